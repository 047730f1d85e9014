"""A SIM's usage counters and health figures, and their pure updates.

Theory of operation: counters belong to the site's local day and month; ``rolled`` starts
new ones when the local date moved on (a call is counted on the local day it ended).
The failure streak counts calls in a row that were not answered and survives the day
change. The answer-rate baseline is a running mean over past calls, folded in as calls
leave the recent window, so a collapse compares the last ``window`` calls with the SIM's
own history (see ``review``). ``days`` keeps the last few days' figures for HQ reports.
"""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass, field, replace
from typing import Any

KEEP_DAYS = 8
BASELINE_SPAN = 200  # the baseline follows roughly the last 200 calls


@dataclass(frozen=True)
class Usage:
    """One SIM's counters; stored as a msgpack map under ``sim:usage:<iccid>``."""

    day: str = ""
    month: str = ""
    calls_today: int = 0
    answered_today: int = 0
    effective_today: int = 0
    connected_s_today: float = 0.0
    connected_s_month: float = 0.0
    failure_streak: int = 0
    recent: tuple[bool, ...] = ()
    baseline: float | None = None
    baseline_calls: int = 0
    days: dict[str, list[float]] = field(default_factory=dict)
    review: str = ""
    review_acks: int = 0

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["recent"] = list(self.recent)
        return doc

    @classmethod
    def from_doc(cls, doc: Any) -> Usage:
        """Counters from their stored form (an empty Usage for anything unreadable)."""
        if not isinstance(doc, dict):
            return cls()
        known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        known["recent"] = tuple(bool(x) for x in known.get("recent", ()))
        return cls(**known)


def rolled(usage: Usage, local: datetime.date) -> Usage:
    """The counters for local date ``local``: a new day or month starts from zero."""
    day, month = local.isoformat(), local.isoformat()[:7]
    if usage.day == day:
        return usage
    changes: dict[str, Any] = {
        "day": day,
        "calls_today": 0,
        "answered_today": 0,
        "effective_today": 0,
        "connected_s_today": 0.0,
    }
    if usage.month != month:
        changes.update(month=month, connected_s_month=0.0)
    return replace(usage, **changes)


def recorded(
    usage: Usage,
    local: datetime.date,
    answered: bool,
    connected_s: float,
    effective_s: float,
    window: int,
) -> Usage:
    """``usage`` after one call that ended on local date ``local``."""
    now = rolled(usage, local)
    recent = (*now.recent, answered)
    baseline, baseline_calls = now.baseline, now.baseline_calls
    while len(recent) > window:
        baseline_calls += 1
        weight = 1 / min(baseline_calls, BASELINE_SPAN)
        baseline = (
            float(recent[0]) if baseline is None else baseline + weight * (recent[0] - baseline)
        )
        recent = recent[1:]
    now = replace(
        now,
        calls_today=now.calls_today + 1,
        answered_today=now.answered_today + int(answered),
        effective_today=now.effective_today + int(answered and connected_s >= effective_s),
        connected_s_today=now.connected_s_today + connected_s,
        connected_s_month=now.connected_s_month + connected_s,
        failure_streak=0 if answered else now.failure_streak + 1,
        recent=recent,
        baseline=baseline,
        baseline_calls=baseline_calls,
    )
    return replace(now, days=_days(now))


def _days(usage: Usage) -> dict[str, list[float]]:
    days = dict(usage.days)
    days[usage.day] = [
        usage.calls_today,
        usage.answered_today,
        round(usage.connected_s_today, 1),
        usage.effective_today,
    ]
    return {d: days[d] for d in sorted(days)[-KEEP_DAYS:]}
