"""The ``sites`` table as the API, the console and the routing report read it.

A site is online when it was heard from (hello, status, any message) within
``ONLINE_WINDOW_MS``. ``health`` is the last ``status`` the site sent, untrusted: only
the keys read below are used, each checked for its type.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from aggregator import reports
from aggregator.store.schema import sites

ONLINE_WINDOW_MS = 60_000
UTC = reports.zone("UTC")
UPGRADE_FIELDS = ("from_version", "to_version", "result", "error_id", "finished")


@dataclass(frozen=True)
class LastUpgrade:
    """The site's last ``callmesh upgrade``, as it reported it (``upgrade`` in ``status``)."""

    from_version: str
    to_version: str
    result: str  # upgraded, refused, rolled-back, rollback-failed, failed
    error_id: str
    finished: str

    @classmethod
    def parse(cls, raw: object) -> LastUpgrade | None:
        """The report, or None when it is missing or not one."""
        if not isinstance(raw, dict) or not all(
            isinstance(raw.get(k), str) for k in UPGRADE_FIELDS
        ):
            return None
        return cls(*(raw[k][:64] for k in UPGRADE_FIELDS))

    @property
    def summary(self) -> str:
        """``0.1.0 → 0.2.0 rolled-back (health-check-failed)``, as the console shows it."""
        why = f" ({self.error_id})" if self.error_id else ""
        return f"{self.from_version} → {self.to_version} {self.result}{why}"


@dataclass(frozen=True)
class SiteRow:
    """One site: identity, liveness, backlog and its last reported health."""

    site_id: str
    online: bool
    last_seen: str | None
    software: str
    backlog_cdr: int
    cdrs_received: int
    health: dict[str, Any] | None

    @property
    def status(self) -> str:
        return "online" if self.online else "offline"

    @property
    def alarms(self) -> list[str]:
        alarms = self.reported("alarms")
        return [a for a in alarms if isinstance(a, str)] if isinstance(alarms, list) else []

    @property
    def recordings_quarantined(self) -> int:
        return int(self.reported("recordings_quarantined") or 0)

    @property
    def calls_active(self) -> int | None:
        """Calls in progress the site last reported; None if it reports none (no PBX)."""
        found = self.reported("calls_active")
        valid = isinstance(found, int) and not isinstance(found, bool) and found >= 0
        return found if valid else None

    @property
    def last_upgrade(self) -> LastUpgrade | None:
        """The last upgrade the site reported, if any."""
        return LastUpgrade.parse(self.reported("upgrade"))

    def reported(self, key: str, default: Any = None) -> Any:
        """One value of the last health report (``default`` when absent)."""
        return (self.health or {}).get(key, default)


def site_rows(conn: sa.Connection, scope: frozenset[str] | None) -> list[SiteRow]:
    """Every site the scope covers (None: all), by id."""
    query = sa.select(sites).order_by(sites.c.site_id)
    if scope is not None:
        query = query.where(sites.c.site_id.in_(sorted(scope)))
    now = _now_ms()
    return [_site(row, now) for row in conn.execute(query)]


def site_row(conn: sa.Connection, site_id: str) -> SiteRow | None:
    """One site, or None when it never connected."""
    row = conn.execute(sa.select(sites).where(sites.c.site_id == site_id)).first()
    return None if row is None else _site(row, _now_ms())


def _now_ms() -> int:
    return int(time.time() * 1000)


def _site(row: Any, now_ms: int) -> SiteRow:
    return SiteRow(
        site_id=row.site_id,
        online=now_ms - row.last_seen_ms < ONLINE_WINDOW_MS,
        last_seen=reports.render_time(row.last_seen_ms, UTC),
        software=row.software,
        backlog_cdr=row.backlog_cdr,
        cdrs_received=row.cdrs_received,
        health=row.health if isinstance(row.health, dict) else None,
    )
