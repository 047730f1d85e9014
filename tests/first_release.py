"""A database of callmesh's first release (schema by ``create_all``), filled with data."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from aggregator.store.cdr_rows import cdr_row, hourly_totals
from aggregator.store.db import driver_url
from tests import first_release_schema as old
from tests.sync_env import T0, make_cdr

HOUR_S = 3600


def spread_cdr(n: int) -> bytes:
    """CDR ``n`` of a series that starts a CDR every 7 hours from T0 (weeks of data)."""
    start = T0 + n * 7 * HOUR_S
    return make_cdr(n, start=start, answer=start + 5, end=start + 65)


@dataclass(frozen=True)
class FirstRelease:
    """What was stored before the upgrade."""

    site_id: str
    cdrs: int
    calls_by_day: dict[int, int]


def make_first_release_db(url: str, cdrs: int = 120, site_id: str = "site-a") -> FirstRelease:
    """Create the first release's schema at ``url`` and store ``cdrs`` CDRs as it did."""
    engine = sa.create_engine(driver_url(url))
    try:
        old.metadata.create_all(engine)
        rows = [cdr_row(site_id, spread_cdr(n), 1) for n in range(cdrs)]
        totals = hourly_totals(rows)
        with engine.begin() as conn:
            site = {"site_id": site_id, "first_seen_ms": 1, "last_seen_ms": 1}
            conn.execute(old.sites.insert(), [site | {"cdrs_received": cdrs}])
            conn.execute(old.cdrs.insert(), [row._asdict() for row in rows])
            conn.execute(
                old.cdr_rollup.insert(),
                [
                    dict(zip(("calls", "answered", "duration_s", "billable_s"), t, strict=True))
                    | {"site_id": s, "hour_ms": h, "dim": d, "key": k}
                    for (s, h, d, k), t in totals.items()
                ],
            )
    finally:
        engine.dispose()
    by_day: dict[int, int] = {}
    for row in rows:
        day = row.started_ms - row.started_ms % 86_400_000
        by_day[day] = by_day.get(day, 0) + 1
    return FirstRelease(site_id, cdrs, by_day)
