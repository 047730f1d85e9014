"""Queue figures per site-local day, checked on SQLite and PostgreSQL alike: a site in
Europe/Berlin with calls across both daylight-saving changes of 2026 (a 23-hour and a
25-hour day), against the same calls grouped by their local day one by one."""

from __future__ import annotations

import datetime
import random
import time
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from aggregator import reports
from aggregator.queues.answer_times import answer_time_report
from aggregator.queues.report import QueueQuery, local_split, queue_report
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import driver_url, migrated_engine
from aggregator.store.queue_local import local_day
from aggregator.store.schema import directory_sites, queue_rollup, queue_rollup_local, queue_sites
from tests.queue_cdrs import QueuedCall
from tests.queue_migration import CALLS as MIGRATED_CALLS
from tests.queue_migration import at_revision_0003

BERLIN = ZoneInfo("Europe/Berlin")
DROPPED_HOUR_MS = 1_762_124_400_000  # 2025-11-02T23:00Z
COUNTS_0009 = ("offered", "answered", "abandoned", "overflowed", "timeout", "callback",
               "interrupted", "sl_met")  # fmt: skip
OUTCOMES = ["answered"] * 5 + ["abandoned", "overflowed", "timeout", "interrupted", "callback"]
# (from, to) local dates around the spring (23-hour day) and autumn (25-hour day) changes.
SPANS = (("2026-03-27", "2026-04-01"), ("2026-10-23", "2026-10-28"))


def dst_calls(per_span: int = 150, seed: int = 11) -> list[QueuedCall]:
    """Calls every 47 minutes or so through each span (some within minutes of midnight)."""
    rng = random.Random(seed)
    calls: list[QueuedCall] = []
    for first, _ in SPANS:
        start = reports.parse_time(first, BERLIN) / 1000
        for i in range(per_span):
            calls.append(QueuedCall(len(calls), rng.choice(["support", "sales"]),
                                    rng.choice(OUTCOMES), wait_s=round(rng.uniform(1, 150), 1),
                                    talk_s=round(rng.uniform(5, 500), 1), sl_met=rng.random() < 0.5,
                                    start=start + i * 2820 + rng.uniform(-60, 60)))  # fmt: skip
    return calls


CALLS = dst_calls()


def place(engine: sa.Engine, site_id: str, tz: str) -> None:
    """Put a site in the routing directory (or move it) with time zone ``tz``."""
    with engine.begin() as conn:
        conn.execute(sa.delete(directory_sites).where(directory_sites.c.id == site_id))
        conn.execute(directory_sites.insert().values(id=site_id, profile="branch",
                     sip_address="10.0.0.1", timezone=tz, extensions=[], ranges=[]))  # fmt: skip


def ingest(engine: sa.Engine, site_id: str, calls: list[QueuedCall]) -> None:
    """The calls' CDRs in overlapping batches: every CDR but the first 30 arrives twice."""
    docs = [(c.n, c.cdr()) for c in calls]
    store = CdrStore(engine)
    for first in range(0, len(docs), 30):
        store.ingest(site_id, docs[first : first + 60])


def by_local_day(calls: list[QueuedCall], tz: ZoneInfo) -> dict[tuple[str, str], dict[str, object]]:
    """The raw grouping: per queue and the local date each call started on, its figures."""
    grouped: dict[tuple[str, str], list[QueuedCall]] = {}
    for c in calls:
        day = datetime.datetime.fromtimestamp(c.start, tz).date().isoformat()
        grouped.setdefault((c.queue, day), []).append(c)
    return {key: figures(mine) for key, mine in grouped.items()}


def figures(calls: list[QueuedCall]) -> dict[str, object]:
    answered = [c for c in calls if c.outcome == "answered"]
    judged = len(answered) + sum(c.outcome == "abandoned" for c in calls)
    return {
        "offered": len(calls),
        **{o: sum(c.outcome == o for c in calls) for o in set(OUTCOMES)},
        "answered_within_sl": sum(c.sl_met for c in answered),
        "service_level_percent": round(100 * sum(c.sl_met for c in answered) / judged, 1)
        if judged
        else None,
        "asa_s": round(sum(c.wait_s for c in answered) / len(answered), 1) if answered else None,
        "aht_s": round(sum(c.talk_s for c in answered) / len(answered), 1) if answered else None,
        "longest_wait_s": round(max(c.wait_s for c in calls), 1),
    }


def report(engine: sa.Engine, tz: ZoneInfo, span: tuple[str, str], **kw: object) -> ReportRun:
    query = QueueQuery(reports.parse_time(span[0], tz), reports.parse_time(span[1], tz), tz, **kw)  # type: ignore[arg-type]
    with engine.connect() as conn:
        split = local_split(conn, query)
        local = frozenset() if split is None else split.local
        return ReportRun(local, queue_report(conn, query))


class ReportRun:
    """The sites a report read from their local-day rows, and its lines."""

    def __init__(self, local: frozenset[str], lines: list[dict[str, object]]) -> None:
        self.local = local
        self.lines = lines

    def of(self, site_id: str) -> dict[tuple[str, str], dict[str, object]]:
        mine = [line for line in self.lines if line["site_id"] == site_id]
        return {(str(line["queue"]), str(line["period"])): line for line in mine}


def assert_equal(got: dict[tuple[str, str], dict[str, object]], calls: list[QueuedCall],
                 tz: ZoneInfo) -> None:  # fmt: skip
    """Every line's figures equal the raw grouping's (seconds within a rounding step)."""
    want = by_local_day(calls, tz)
    assert got.keys() == want.keys()
    for key, expected in want.items():
        for name, value in expected.items():
            close = value if value is None else pytest.approx(value, abs=0.11)
            assert got[key][name] == close, (key, name)


def check_local_days_across_dst(engine: sa.Engine) -> None:
    """site-a (Berlin) from its local-day rows, site-b (no zone) from the hourly ones."""
    place(engine, "site-a", "Europe/Berlin")
    ingest(engine, "site-a", CALLS)
    ingest(engine, "site-b", CALLS)
    for span, short_or_long in zip(SPANS, ("2026-03-29", "2026-10-25"), strict=True):
        run = report(engine, BERLIN, span)
        assert run.local == {"site-a"}
        mine = [c for c in CALLS if _within(c, span, BERLIN)]
        assert_equal(run.of("site-a"), mine, BERLIN)
        assert_equal(run.of("site-b"), mine, BERLIN)
        assert short_or_long in {day for _, day in run.of("site-a")}
        assert answer_times(engine, span, "site-a") == answer_times(engine, span, "site-b")
    part = report(engine, BERLIN, ("2026-03-29T06:00", "2026-03-30"))  # not from midnight
    assert part.local == frozenset()
    assert_equal(part.of("site-a"), [c for c in CALLS if _within(c, ("2026-03-29T06:00",
                 "2026-03-30"), BERLIN)], BERLIN)  # fmt: skip
    ingest(engine, "site-a", CALLS)  # all again: nothing changes
    for span in SPANS:
        mine = [c for c in CALLS if _within(c, span, BERLIN)]
        assert_equal(report(engine, BERLIN, span).of("site-a"), mine, BERLIN)


def check_a_moved_site_reads_the_hourly_rollup(engine: sa.Engine) -> None:
    """After check_local_days_across_dst: site-a moves to New York and sends one more call."""
    place(engine, "site-a", "America/New_York")
    later = QueuedCall(len(CALLS), "support", "answered", wait_s=3.0, talk_s=9.0,
                       start=reports.parse_time("2026-10-27T12:00", BERLIN) / 1000)  # fmt: skip
    ingest(engine, "site-a", [later])
    z = queue_sites.c
    with engine.connect() as conn:
        ((name, since),) = conn.execute(sa.select(z.tz, z.since_day).where(z.site_id == "site-a"))
    new_york = ZoneInfo("America/New_York")
    today = local_day(int(time.time() * 1000), new_york)
    assert name == "America/New_York"
    assert since in (today + 1, today + 2)  # complete from tomorrow there
    for tz in (BERLIN, new_york):
        run = report(engine, tz, SPANS[1], sites=frozenset({"site-a"}))
        assert run.local == frozenset()
        assert_equal(run.of("site-a"), [c for c in [*CALLS, later] if _within(c, SPANS[1], tz)], tz)


def check_revision_0010_fills_the_local_days(url: str) -> None:
    """A database at 0009 with queued calls of a Berlin site, upgraded: its rows are there."""
    at_revision_0003(url, then="0009")
    engine = sa.create_engine(driver_url(url))
    place(engine, "site-a", "Europe/Berlin")
    with engine.begin() as conn:  # an hour whose CDRs retention dropped
        conn.execute(queue_rollup.insert().values(site_id="site-a", hour_ms=DROPPED_HOUR_MS,
                     queue="sales", **dict.fromkeys(COUNTS_0009, 1), wait_s=1.0, talk_s=1.0,
                     max_wait_s=1.0))  # fmt: skip
    engine.dispose()
    engine, migration = migrated_engine(url)
    try:
        assert migration.before == "0009"
        with engine.connect() as conn:
            since = conn.scalar(sa.select(queue_sites.c.since_day))
        assert since == local_day(DROPPED_HOUR_MS, BERLIN) + 1  # the hour is Nov 3 there
        assert report(engine, BERLIN, ("2025-11-03", "2025-11-26")).local == frozenset()
        assert report(engine, BERLIN, ("2025-11-04", "2025-11-26")).local == {"site-a"}
        span = ("2025-11-24", "2025-11-26")
        run = report(engine, BERLIN, span)
        assert run.local == {"site-a"}
        assert_equal(run.of("site-a"), MIGRATED_CALLS, BERLIN)
        with engine.connect() as conn:
            rows = conn.scalar(sa.select(sa.func.count()).select_from(queue_rollup_local))
        assert rows == len(by_local_day(MIGRATED_CALLS, BERLIN))
    finally:
        engine.dispose()


def answer_times(engine: sa.Engine, span: tuple[str, str], site_id: str) -> list[object]:
    """The site's answer-time lines in Berlin, without the site's name."""
    start, end = (reports.parse_time(at, BERLIN) for at in span)
    query = QueueQuery(start, end, BERLIN, sites=frozenset({site_id}))
    with engine.connect() as conn:
        lines = answer_time_report(conn, query)
    assert lines
    return [{**line, "site_id": None} for line in lines]


def _within(call: QueuedCall, span: tuple[str, str], tz: ZoneInfo) -> bool:
    return reports.parse_time(span[0], tz) <= call.start * 1000 < reports.parse_time(span[1], tz)
