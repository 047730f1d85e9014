"""The per-queue rollup per site-*local* day, kept at ingest beside the UTC ones.

Theory of operation: a site's time zone is the routing directory's
(``directory_sites.timezone``). Each queued call newly stored adds to
``queue_rollup_local`` under its site, the site's zone, the local date its start falls on
in that zone (so a day is the site's midnight to midnight, 23 or 25 hours across a
daylight-saving change) and its queue; in the same transaction as the other rollups and
only for CDRs newly inserted, so a redelivered CDR adds nothing. Sites the directory does
not place, or places in UTC, get no rows: the UTC daily rollup already answers for them.

``queue_sites`` holds, per site with queued calls, the zone its rows are kept in ("UTC":
none) and ``since_day``, the first local day whose rows are complete. A site placed in a
zone before any of its queued calls was stored has them all (``since_day`` 0). When a
site that already has calls gets a zone, or its zone changes, its calls from then on go
to rows of the new zone, which are complete only from the next local day (``since_day``:
tomorrow there, by this node's clock); the report reads the hourly rollup for the days
before (aggregator/queues/report.py). The rows of a zone a site left stay, unread.
Revision 0010 fills both tables from the CDRs already stored."""

from __future__ import annotations

import datetime
import functools
import logging
import time
from collections.abc import Collection, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from aggregator.store.db import insert
from aggregator.store.queue_rollup import QueueCall, queue_totals, upsert_totals
from aggregator.store.schema import (
    directory_sites,
    queue_rollup,
    queue_rollup_local,
    queue_sites,
)

log = logging.getLogger(__name__)

# The zone ``queue_sites`` gives a site whose figures have no local-day rows.
NO_ZONE = "UTC"
_EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()


def day_number(day: datetime.date) -> int:
    """A date as days since 1970-01-01 (``queue_rollup_local.day``)."""
    return day.toordinal() - _EPOCH_DAY


def local_day(at_ms: int, tz: ZoneInfo) -> int:
    """The day number of the local date at ``at_ms`` in ``tz``."""
    return day_number(datetime.datetime.fromtimestamp(at_ms / 1000, tz).date())


@functools.lru_cache(maxsize=1024)
def site_zone(name: str) -> ZoneInfo | None:
    """The zone a directory names, or None for UTC (no local rows) or a name not known."""
    if name == NO_ZONE:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("error_id=site-zone-unknown zone=%r: queue figures kept in UTC only", name)
        return None


def directory_zones(conn: sa.Connection, site_ids: Collection[str]) -> dict[str, ZoneInfo]:
    """The zones of those of ``site_ids`` the directory places outside UTC."""
    d = directory_sites.c
    rows = conn.execute(sa.select(d.id, d.timezone).where(d.id.in_(sorted(site_ids))))
    zones = {site: site_zone(name) for site, name in rows}
    return {site: tz for site, tz in zones.items() if tz is not None}


def add_to_local_rollup(conn: sa.Connection, calls: Iterable[QueueCall]) -> None:
    """Add ``calls`` (their CDRs newly stored) to their sites' local-day rows."""
    calls = list(calls)
    if not calls:
        return
    zones = directory_zones(conn, {call.site_id for call in calls})
    _follow_zones(conn, {call.site_id for call in calls}, zones)
    add_in_zones(conn, calls, zones)


def add_in_zones(
    conn: sa.Connection, calls: Iterable[QueueCall], zones: Mapping[str, ZoneInfo]
) -> None:
    """Add the calls of the sites in ``zones`` to their rows of that zone."""
    local = [
        call._replace(hour_ms=local_day(call.started_ms, zones[call.site_id]))
        for call in calls
        if call.site_id in zones
    ]
    names = {site: tz.key for site, tz in zones.items()}
    upsert_totals(conn, queue_rollup_local, "day", queue_totals(local), zones=names)


def set_since(conn: sa.Connection, since: Mapping[str, tuple[str, int]]) -> None:
    """Record per site (zone name, first complete local day)."""
    rows = [{"site_id": s, "tz": tz, "since_day": day} for s, (tz, day) in sorted(since.items())]
    if rows:
        stmt = insert(conn.engine, queue_sites)
        stmt = stmt.on_conflict_do_update(
            index_elements=["site_id"],
            set_={"tz": stmt.excluded.tz, "since_day": stmt.excluded.since_day},
        )
        conn.execute(stmt, rows)


def _follow_zones(
    conn: sa.Connection, site_ids: Collection[str], zones: Mapping[str, ZoneInfo]
) -> None:
    """Register a site new to the queue figures; start a site's rows afresh (complete from
    tomorrow) where its zone is new or changed; mark "UTC" a site no longer placed."""
    z = queue_sites.c
    kept = dict(
        conn.execute(sa.select(z.site_id, z.tz).where(z.site_id.in_(sorted(site_ids)))).all()
    )
    now_ms = int(time.time() * 1000)
    changed = {}
    for site in site_ids:
        tz = zones.get(site)
        name = NO_ZONE if tz is None else tz.key
        if kept.get(site) != name:
            since = 0
            if tz is not None and _has_rows(conn, site):
                since = local_day(now_ms, tz) + 1
            changed[site] = (name, since)
    set_since(conn, changed)


def _has_rows(conn: sa.Connection, site_id: str) -> bool:
    """Whether calls of the site were stored before (its hourly queue rollup has rows)."""
    q = queue_rollup.c
    return conn.scalar(sa.select(sa.exists().where(q.site_id == site_id))) is True
