"""May this outbound call be dialled now? Checked before every API or campaign call.

Theory of operation: ``check`` refuses, in order, a destination that is not a phone
number, an unknown campaign, a number on the site's do-not-call list (config plus the
list kept through the local API) or on the company's (HQ's ``dnc`` snapshot topic), a
time outside the campaign's (else the site's) calling hours in its time zone, and a
destination already attempted ``max_attempts_per_day`` times this local day. An allowed
check counts as an attempt, in the same LMDB transaction that tested the count, so two
concurrent checks cannot both take the last attempt; SMS (``source="sms"``) are counted
apart from calls. Every refusal is appended to the ``compliance`` outbox, which the sync
client delivers to HQ like CDRs (at least once, kept until acknowledged), naming where
the attempt came from (``source``: ``api``, ``click-to-dial``, ``conference``,
``three-way``, ``break-out``, ``sms``), the caller and the call id when there is one.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from appliance.settings import ComplianceSettings, HourWindow
from appliance.sim.limits import Window
from appliance.store import Outbox, StateStore, Store

log = logging.getLogger(__name__)

TOPIC = "dnc"
SITE_DNC_KEY = "compliance:dnc:site"
COMPANY_DNC_KEY = f"snapshot:{TOPIC}"
ATTEMPTS = "compliance:attempts:"
OUTBOX = "compliance"
_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
_SEPARATORS = re.compile(r"[\s().-]")


class NumberError(ValueError):
    """Text that is not a phone number."""


def normalize(number: str) -> str:
    """The number without spaces, dots, dashes or brackets; NumberError if not a number."""
    plain = _SEPARATORS.sub("", number)
    if not _NUMBER.match(plain):
        raise NumberError(f"{number!r} is not a phone number (digits, optional leading +)")
    return plain


@dataclass(frozen=True)
class Attempt:
    """Where a checked attempt comes from (carried into the refusal record)."""

    source: str = "api"
    caller: str = ""
    call_id: str = ""


@dataclass(frozen=True)
class Decision:
    """The answer to ``check``: allowed, or refused with a stable ``error_id`` and a message."""

    allowed: bool
    destination: str
    campaign: str | None = None
    error_id: str = ""
    message: str = ""
    attempts_today: int = 0


class ComplianceService:
    """Owns the site DNC list, the company DNC copy and attempt counters (a lifecycle component)."""

    name = "compliance"

    def __init__(
        self, settings: ComplianceSettings, timezone: str, store: Callable[[], Store]
    ) -> None:
        self._settings = settings
        self._zone = zoneinfo.ZoneInfo(timezone)
        self._store = store
        self._config_dnc = {normalize(n) for n in settings.dnc}
        self._campaigns = {c.id: c for c in settings.campaigns}
        self._state: StateStore | None = None
        self._outbox: Outbox | None = None
        self._site: dict[str, Any] = {}
        self._company: dict[str, Any] = {}
        self.company_version = 0
        self._day = ""

    async def start(self) -> None:
        """Load the DNC lists (the store must be open)."""
        self._state = StateStore(self._store())
        self._outbox = Outbox(self._store(), OUTBOX)
        self._site = self._state.get(SITE_DNC_KEY, {})
        stored = self._state.get(COMPANY_DNC_KEY, {})
        self.company_version = int(stored.get("version", 0))
        self._company = stored.get("data") or {}

    async def stop(self) -> None:
        """Nothing to release: every change is already stored."""

    def check(
        self,
        destination: str,
        campaign: str | None = None,
        now: datetime.datetime | None = None,
        attempt: Attempt | None = None,
    ) -> Decision:
        """Whether ``destination`` may be dialled now; an allowed check counts as an attempt."""
        attempt = attempt or Attempt()
        try:
            number = normalize(destination)
        except NumberError as err:
            return self._refuse(destination, campaign, attempt, "bad-destination", str(err))
        refusal = self._refusal(number, campaign, now)
        if refusal is not None:
            return self._refuse(number, campaign, attempt, *refusal)
        local = self._local(now, campaign)
        limit = self._attempt_limit(campaign)
        counter = f"sms:{number}" if attempt.source == "sms" else number
        count = self._count_attempt(counter, local.date(), limit)
        if count > limit:
            done = "sent an SMS" if attempt.source == "sms" else "called"
            message = f"{number} was already {done} {limit} times today (limit {limit})"
            return self._refuse(number, campaign, attempt, "attempt-limit", message)
        return Decision(True, number, campaign, attempts_today=count)

    def _refusal(
        self, number: str, campaign: str | None, now: datetime.datetime | None
    ) -> tuple[str, str] | None:
        if campaign is not None and campaign not in self._campaigns:
            return "unknown-campaign", f"campaign {campaign!r} is not configured at this site"
        listed = self.listed(number)
        if listed is not None:
            return listed
        local = self._local(now, campaign)
        windows = self._windows(campaign)
        if windows and not any(w.open_at(local) for w in windows):
            hours = ", ".join(f"{w.start:%H:%M}-{w.end:%H:%M}" for w in windows)
            zone = local.tzinfo
            return (
                "outside-calling-hours",
                f"calls are allowed {hours} ({zone}); it is {local:%a %H:%M}",
            )
        return None

    def listed(self, number: str) -> tuple[str, str] | None:
        """``(error_id, message)`` when the normalized ``number`` is on a do-not-call list.

        Counts no attempt and records nothing (SMS use it before queueing a message).
        """
        if number in self._config_dnc or number in self._site:
            return "dnc-site", f"{number} is on this site's do-not-call list"
        if number in self._company:
            return "dnc-company", f"{number} is on the company's do-not-call list"
        return None

    def _windows(self, campaign: str | None) -> list[Window]:
        own: tuple[HourWindow, ...] = ()
        if campaign is not None:
            own = self._campaigns[campaign].windows
        chosen = own or self._settings.windows
        return [Window.from_doc(w.model_dump()) for w in chosen]

    def _attempt_limit(self, campaign: str | None) -> int:
        own = self._campaigns[campaign].max_attempts_per_day if campaign else None
        return own or self._settings.max_attempts_per_day

    def _local(self, now: datetime.datetime | None, campaign: str | None) -> datetime.datetime:
        zone = self._zone
        if campaign is not None and campaign in self._campaigns:
            name = self._campaigns[campaign].timezone
            zone = zoneinfo.ZoneInfo(name) if name else zone
        return (now or datetime.datetime.now(datetime.UTC)).astimezone(zone)

    def _count_attempt(self, number: str, day: datetime.date, limit: int) -> int:
        assert self._state is not None
        if self._day != day.isoformat():
            self._forget_days_before(day.isoformat())
        seen: list[int] = []

        def change(count: Any) -> Any:
            seen.append(int(count or 0) + 1)
            return min(seen[0], limit)

        self._state.update(f"{ATTEMPTS}{day.isoformat()}:{number}", change)
        return seen[0]

    def _forget_days_before(self, day: str) -> None:
        assert self._state is not None
        old = [k for k, _ in self._state.items(ATTEMPTS) if k[len(ATTEMPTS) :][:10] < day]
        for key in old:
            self._state.delete(key)
        self._day = day

    def _refuse(
        self, number: str, campaign: str | None, attempt: Attempt, error_id: str, message: str
    ) -> Decision:
        assert self._outbox is not None
        event = {
            "id": uuid.uuid4().hex,
            "at": time.time(),
            "destination": number,
            "campaign": campaign,
            "error_id": error_id,
            "message": message,
            "source": attempt.source,
            "caller": attempt.caller,
            "call_id": attempt.call_id,
        }
        self._outbox.append(msgpack.packb(event, use_bin_type=True))
        # ``message`` is a LogRecord attribute: passed in ``extra`` it would raise.
        fields = {k: v for k, v in event.items() if k != "message"}
        log.info("outbound call refused: %s", message, extra=fields)
        return Decision(False, number, campaign, error_id, message)

    def site_dnc(self) -> dict[str, Any]:
        """The site list kept through the API, plus the numbers from config."""
        return {"numbers": dict(self._site), "config": sorted(self._config_dnc)}

    def add_site_dnc(self, number: str, reason: str) -> str:
        """Put a number on the site list; returns it normalized."""
        plain = normalize(number)
        entry = {"reason": reason, "added": time.time()}
        self._site = self._change_site(lambda doc: {**doc, plain: entry})
        return plain

    def remove_site_dnc(self, number: str) -> bool:
        """Take a number off the site list; whether it was on it."""
        plain = normalize(number)
        present = plain in self._site
        self._site = self._change_site(lambda doc: {k: v for k, v in doc.items() if k != plain})
        return present

    def _change_site(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        assert self._state is not None
        result: dict[str, Any] = self._state.update(
            SITE_DNC_KEY, lambda d: change(d or {}), default={}
        )
        return result

    def apply_company_dnc(self, version: int, data: Any) -> tuple[bool, str]:
        """Replace the company list with HQ's snapshot ``{number: reason}``."""
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            return False, "the dnc snapshot must be a map of numbers"
        assert self._state is not None
        self._state.put(COMPANY_DNC_KEY, {"version": version, "data": data})
        self._company, self.company_version = dict(data), version
        log.info(
            "company do-not-call list applied", extra={"version": version, "numbers": len(data)}
        )
        return True, ""
