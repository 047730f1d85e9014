"""The hotel's business date: the day the PMS books charges to, moved on by its night audit.

FIAS says the date and time of the audit records (``NS``/``NE``) are irrelevant, and that
postings between midnight and the night audit belong to the hotel's business date, that
is "yesterday". So the business date is derived, not read from ``DA``: the ``NE`` that
ends an audit opens the business day of the calendar day it ends on (an audit ending
before noon, the usual small hours) or of the next one (an audit run in the evening),
and that date is stored in LMDB. The date in force is the one the last audit opened,
kept within [yesterday, today] of the site's calendar: an audit missed while the link was
down cannot hold charges on an old day, and before any audit was seen it is today.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections.abc import Callable

from appliance.store import StateStore, Store

log = logging.getLogger(__name__)

KEY = "business-date"


def opened_by_audit(ended: dt.datetime) -> dt.date:
    """The business day an audit ending at ``ended`` (site time) opens."""
    return (ended - dt.timedelta(hours=12)).date() + dt.timedelta(days=1)


def in_force(opened: dt.date | None, now: dt.datetime) -> dt.date:
    """The business date at ``now`` (site time) after an audit opened ``opened``."""
    today = now.date()
    if opened is None:
        return today
    return min(max(opened, today - dt.timedelta(days=1)), today)


class BusinessDate:
    """The business date in force, and its change at each night audit's end."""

    def __init__(self, store: Callable[[], Store], timezone: str, now: Callable[[], float]) -> None:
        self._store = store
        self._zone = zoneinfo.ZoneInfo(timezone)
        self._now = now
        self._opened: dt.date | None = None
        self._loaded = False

    def audit_ended(self) -> dt.date:
        """The PMS sent NE: store the business day it opens, and return it."""
        opened = opened_by_audit(self._local())
        StateStore(self._store(), "hotel").put(KEY, opened.isoformat())
        self._opened, self._loaded = opened, True
        log.info("night audit ended: business date %s", opened.isoformat())
        return opened

    def current(self) -> str:
        """The business date in force, ``YYYY-MM-DD``."""
        if not self._loaded:
            stored = StateStore(self._store(), "hotel").get(KEY)
            self._opened = dt.date.fromisoformat(stored) if isinstance(stored, str) else None
            self._loaded = True
        return in_force(self._opened, self._local()).isoformat()

    def _local(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._now(), self._zone)
