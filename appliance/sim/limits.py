"""Operator limits for a SIM and the pure check of a SIM's usage against them.

Limits come from the site config (per group and per ICCID) and from HQ commands; a field
left unset means no limit. A SIM's effective limits overlay, field by field: its group's
config limits, the group's limits set at HQ, its own config limits, its own HQ limits.

Exceptions::

    LimitsError(ValueError)    a limits document that cannot be used (names the field)
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from appliance.sim.usage import Usage

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)


class LimitsError(ValueError):
    """A limits document is malformed."""


@dataclass(frozen=True)
class Window:
    """Allowed hours on ``days`` (Monday = 0), local time; ``end`` before ``start`` wraps."""

    start: datetime.time
    end: datetime.time
    days: tuple[int, ...] = ALL_DAYS

    def open_at(self, local: datetime.datetime) -> bool:
        """Whether local time ``local`` falls inside the window."""
        now = local.time()
        if self.start <= self.end:
            return local.weekday() in self.days and self.start <= now < self.end
        if now >= self.start:
            return local.weekday() in self.days
        return (local.weekday() - 1) % 7 in self.days and now < self.end

    @classmethod
    def from_doc(cls, doc: Any) -> Window:
        """A window from ``{"start": "HH:MM", "end": "HH:MM", "days": [0..6]}``."""
        if not isinstance(doc, Mapping):
            raise LimitsError("a window is a map of start, end, days")
        days = tuple(doc.get("days", ALL_DAYS))
        if not days or any(type(d) is not int or not 0 <= d <= 6 for d in days):
            raise LimitsError("window days are 0 (Monday) to 6")
        return cls(_hhmm(doc.get("start")), _hhmm(doc.get("end")), days)

    def to_doc(self) -> dict[str, Any]:
        return {
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
            "days": list(self.days),
        }


def _hhmm(text: Any) -> datetime.time:
    match = _HHMM.match(text) if isinstance(text, str) else None
    if match is None:
        raise LimitsError(f"window times are HH:MM, got {text!r}")
    return datetime.time(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class Limits:
    """Per-SIM limits; None is not set (unlimited unless a lower layer sets it).

    ``hours`` empty means any time; set empty at HQ it lifts the config's windows.
    """

    calls_per_day: int | None = None
    minutes_per_day: float | None = None
    minutes_per_month: float | None = None
    max_call_s: int | None = None
    hours: tuple[Window, ...] | None = None

    @classmethod
    def from_doc(cls, doc: Any) -> Limits:
        """Limits from a document (config or HQ command); unknown keys are refused."""
        if not isinstance(doc, Mapping):
            raise LimitsError("limits are a map")
        unknown = set(doc) - {f.name for f in fields(cls)}
        if unknown:
            raise LimitsError(f"unknown limit {sorted(unknown)[0]!r}")
        values: dict[str, Any] = {}
        for name in ("calls_per_day", "max_call_s"):
            values[name] = _number(doc.get(name), name, int)
        for name in ("minutes_per_day", "minutes_per_month"):
            values[name] = _number(doc.get(name), name, float)
        hours = doc.get("hours")
        if hours is not None:
            if not isinstance(hours, list | tuple):
                raise LimitsError("hours is a list of windows")
            values["hours"] = tuple(Window.from_doc(w) for w in hours)
        return cls(**values)

    def to_doc(self) -> dict[str, Any]:
        """The document form, only the fields that are set."""
        doc: dict[str, Any] = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "hours" and getattr(self, f.name) is not None
        }
        if self.hours is not None:
            doc["hours"] = [w.to_doc() for w in self.hours]
        return doc

    def over(self, base: Limits) -> Limits:
        """These limits laid over ``base``: every field set here wins."""
        changes = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(base, **{k: v for k, v in changes.items() if v is not None})


def _number(value: Any, name: str, kind: type[int] | type[float]) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise LimitsError(f"{name} must be a number >= 0")
    if kind is int and value != int(value):
        raise LimitsError(f"{name} must be a whole number")
    return kind(value)


def exhausted(limits: Limits, usage: Usage, local: datetime.datetime) -> str | None:
    """Which limit stops the SIM taking a call at local time ``local`` (None: it has budget)."""
    if limits.calls_per_day is not None and usage.calls_today >= limits.calls_per_day:
        return "calls-per-day"
    if (
        limits.minutes_per_day is not None
        and usage.connected_s_today >= 60 * limits.minutes_per_day
    ):
        return "minutes-per-day"
    month = limits.minutes_per_month
    if month is not None and usage.connected_s_month >= 60 * month:
        return "minutes-per-month"
    if limits.hours and not any(w.open_at(local) for w in limits.hours):
        return "outside-hours"
    return None


def call_time_limit(limits: Limits, usage: Usage) -> int | None:
    """Seconds the next call may last: max duration, capped by the minutes left today/month."""
    caps: list[float] = []
    if limits.max_call_s is not None:
        caps.append(limits.max_call_s)
    if limits.minutes_per_day is not None:
        caps.append(60 * limits.minutes_per_day - usage.connected_s_today)
    if limits.minutes_per_month is not None:
        caps.append(60 * limits.minutes_per_month - usage.connected_s_month)
    return max(1, int(min(caps))) if caps else None
