"""Reports from the rollups agree with the CDRs they were built from, for any range."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator import reports
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import create_engine
from aggregator.store.schema import cdr_rollup, cdr_rollup_daily, cdrs
from tests.first_release import spread_cdr
from tests.sync_env import make_cdr

CDRS = 300  # one every 7 hours: about 87 days


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    path: Path = tmp_path_factory.mktemp("rollups") / "agg.db"
    eng = create_engine(f"sqlite:///{path}")
    store = CdrStore(eng)
    docs = [(n + 1, spread_cdr(n)) for n in range(CDRS)]
    for first in range(0, CDRS, 70):
        store.ingest("site-a", docs[first : first + 100])  # overlapping: redeliveries
    yield eng
    eng.dispose()


def counted(engine: sa.Engine, column: str, start_ms: int, end_ms: int) -> Counter[str]:
    """What a scan of the CDR table says, the way a report without rollups would."""
    query = sa.select(cdrs.c[column]).where(
        cdrs.c.started_ms >= start_ms, cdrs.c.started_ms < end_ms, cdrs.c[column] != ""
    )
    with engine.connect() as conn:
        return Counter(conn.scalars(query))


@pytest.mark.parametrize(
    ("tz", "start", "end"),
    [
        ("UTC", "2025-11-24", "2026-03-01"),
        ("Asia/Kolkata", "2025-12-01", "2026-01-01"),
        ("America/New_York", "2025-12-03T13:00", "2025-12-20T07:00"),
        ("UTC", "2025-12-05T03:00", "2025-12-05T20:00"),
    ],
)
def test_totals_by_trunk_match_a_scan_of_the_cdrs_for_any_range(
    engine: sa.Engine, tz: str, start: str, end: str
) -> None:
    zone = reports.zone(tz)
    span = (reports.parse_time(start, zone), reports.parse_time(end, zone))
    with engine.connect() as conn:
        rows = reports.by_key(conn, "trunk", None, *span)
    assert {row["trunk"]: row["calls"] for row in rows} == counted(engine, "trunk", *span)
    assert rows


def test_daily_rollup_holds_the_sum_of_its_hours(engine: sa.Engine) -> None:
    hour, day = cdr_rollup.c, cdr_rollup_daily.c
    hourly = sa.select(hour.dim, hour.key, sa.func.sum(hour.calls), sa.func.sum(hour.billable_s))
    daily = sa.select(day.dim, day.key, sa.func.sum(day.calls), sa.func.sum(day.billable_s))
    with engine.connect() as conn:
        by_hour = conn.execute(hourly.group_by(hour.dim, hour.key)).all()
        by_day = conn.execute(daily.group_by(day.dim, day.key)).all()
        days = conn.scalar(sa.select(sa.func.count()).select_from(cdr_rollup_daily).where(
            day.dim == "site"))  # fmt: skip
    assert sorted(by_hour) == sorted(by_day)
    assert ("site", "", CDRS, CDRS * 0.75 * 60) in by_day
    assert days == 88


def test_summary_by_day_counts_each_cdr_once(engine: sa.Engine) -> None:
    zone = reports.zone("Europe/Berlin")
    span = (reports.parse_time("2025-11-01", zone), reports.parse_time("2026-03-01", zone))
    with engine.connect() as conn:
        days = reports.summary(conn, None, *span, zone, "day")
    assert sum(day["calls"] for day in days) == CDRS


@pytest.mark.parametrize(
    ("tz", "start", "end"),
    [
        ("UTC", "2025-11-24", "2026-03-01"),
        ("America/New_York", "2026-02-20", "2026-03-20"),  # spring forward on 8 March
        ("Asia/Kolkata", "2025-12-03T13:00", "2025-12-20T07:00"),
    ],
)
def test_summaries_and_calls_by_hour_of_day_match_a_scan_of_the_cdrs_across_offset_changes(
    engine: sa.Engine, tz: str, start: str, end: str
) -> None:
    zone = reports.zone(tz)
    span = (reports.parse_time(start, zone), reports.parse_time(end, zone))
    query = sa.select(cdrs.c.started_ms, cdrs.c.disposition).where(
        cdrs.c.started_ms >= span[0] // 3_600_000 * 3_600_000, cdrs.c.started_ms < span[1]
    )
    per_day: Counter[str] = Counter()
    per_hour: dict[str, Counter[int]] = {}
    of_day: Counter[int] = Counter()
    with engine.connect() as conn:
        for started_ms, _ in conn.execute(query):
            local = datetime.datetime.fromtimestamp(started_ms // 3_600_000 * 3600, zone)
            per_day[local.date().isoformat()] += 1
            per_hour.setdefault(local.date().isoformat(), Counter())[local.hour] += 1
            of_day[local.hour] += 1
        days = reports.summary(conn, None, *span, zone, "day")
        hours_of_day = reports.hour_of_day_calls(conn, None, *span, zone)
        hours = reports.summary(conn, frozenset({"site-a"}), *span, zone, "hour")
    assert {day["period"]: day["calls"] for day in days} == per_day
    for day in days:
        counts = per_hour[day["period"]]
        busiest = max(counts, key=lambda h: (counts[h], -h))
        assert day["busiest_hour"] == f"{busiest:02d}:00"
    assert sum(hour["calls"] for hour in hours) == sum(per_day.values())
    assert hours_of_day == [of_day[h] for h in range(24)]
    assert [h["period"] for h in hours] == sorted(h["period"] for h in hours)


def test_the_local_hour_repeated_at_the_end_of_daylight_saving_time_is_summed(
    tmp_path: Path,
) -> None:
    # Berlin, 26 October 2025: 02:00-03:00 local happens twice, at 00:00 and 01:00 UTC.
    # Two calls in each of those UTC hours make 02:00 the busiest (4) ahead of 11:00 (3).
    night = 1_761_436_800.0  # 2025-10-26T00:00:00Z
    starts = [night + 600, night + 1200, night + 4200, night + 4800] + [night + 36_000] * 3
    docs = [
        (n + 1, make_cdr(n, start=start, answer=start + 5, end=start + 65))
        for n, start in enumerate(starts)
    ]
    eng = create_engine(f"sqlite:///{tmp_path / 'agg.db'}")
    CdrStore(eng).ingest("site-a", docs)
    zone = reports.zone("Europe/Berlin")
    span = (reports.parse_time("2025-10-20", zone), reports.parse_time("2025-11-01", zone))
    with eng.connect() as conn:
        days = reports.summary(conn, None, *span, zone, "day")
    eng.dispose()
    assert [(d["period"], d["calls"], d["busiest_hour"]) for d in days] == [
        ("2025-10-26", 7, "02:00")
    ]
