"""A database at revision 0003 (or later) holding queued calls' CDRs, and what 0004,
0008 and 0011 must make of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from aggregator.store import migrate
from aggregator.store.cdr_rows import cdr_row
from aggregator.store.db import driver_url, migrated_engine
from aggregator.store.queue_rollup import BUCKET_COLUMNS
from aggregator.store.schema import cdrs, queue_callbacks, queue_unanswered
from tests.first_release import make_first_release_db
from tests.queue_cdrs import QueuedCall, call_back
from tests.sync_env import T0

CALLS = [
    QueuedCall(1000 + n, "support" if n % 3 else "sales", outcome, wait_s=2.0 + n * n // 2 / 2,
               talk_s=40.0, sl_met=n % 2 == 0, start=T0 + n * 1800)
    for n, outcome in enumerate(["answered", "abandoned", "answered", "timeout"] * 6)
]  # fmt: skip


def at_revision_0003(url: str, then: str = "0003") -> None:
    """A database as release 0003 left it: the first release's, upgraded to 0003 (and the
    queued calls' CDRs stored then), then upgraded to ``then``."""
    make_first_release_db(url, cdrs=20)
    engine = sa.create_engine(driver_url(url))
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
        config.attributes["connection"] = conn
        command.stamp(config, migrate.FIRST_RELEASE)
        command.upgrade(config, "0003")
        rows = [cdr_row("site-a", call.cdr(), 1)._asdict() for call in CALLS]
        conn.execute(cdrs.insert(), rows)
        command.upgrade(config, then)
    engine.dispose()


def sums(engine: sa.Engine, table: sa.Table) -> dict[str, tuple[float, ...]]:
    t = table.c
    summed = (t.offered, t.answered, t.abandoned, t.timeout, t.sl_met, t.wait_s)
    query = sa.select(t.queue, *map(sa.func.sum, summed), sa.func.max(t.max_wait_s))
    query = query.group_by(t.queue)
    with engine.connect() as conn:
        return {queue: tuple(figures) for queue, *figures in conn.execute(query)}


def assert_close(got: dict[str, tuple[float, ...]], want: dict[str, tuple[float, ...]]) -> None:
    """Equal counts; seconds equal to the millisecond (waits are worked out from times)."""
    assert got.keys() == want.keys()
    for queue, figures in want.items():
        assert got[queue] == pytest.approx(figures, abs=1e-3), queue


def bucket_sums(engine: sa.Engine, table: sa.Table) -> dict[str, tuple[int, ...]]:
    """Per queue, the answered calls of each answer-time bucket."""
    t = table.c
    query = sa.select(t.queue, *(sa.func.sum(t[name]) for name in BUCKET_COLUMNS))
    with engine.connect() as conn:
        rows = conn.execute(query.group_by(t.queue)).all()
    return {queue: tuple(int(n) for n in counts) for queue, *counts in rows}


def bucket_hand_count(calls: list[QueuedCall]) -> dict[str, tuple[int, ...]]:
    """Per queue, answered calls by bucket, counted from the waits."""
    counted = {}
    for queue in {c.queue for c in calls}:
        counts = [0] * len(BUCKET_COLUMNS)
        for c in calls:
            if c.queue == queue and c.outcome == "answered":
                counts[sum(c.wait_s >= low for low in (5, 10, 20, 30, 60, 120))] += 1
        counted[queue] = tuple(counts)
    return counted


def hand_count(calls: list[QueuedCall]) -> dict[str, tuple[float, ...]]:
    counted: dict[str, tuple[float, ...]] = {}
    for queue in {c.queue for c in calls}:
        mine = [c for c in calls if c.queue == queue]
        answered = [c for c in mine if c.outcome == "answered"]
        counted[queue] = (
            len(mine),
            len(answered),
            sum(c.outcome == "abandoned" for c in mine),
            sum(c.outcome == "timeout" for c in mine),
            sum(c.sl_met for c in answered),
            sum(c.wait_s for c in answered),
            max(c.wait_s for c in mine),
        )
    return counted


def assert_callbacks_back_filled(url: str) -> None:
    """A database at 0009 holding a callback and its two failed tries: 0011 keeps the
    callback with its tries and status, and no lost call stored before it was offered one."""
    at_revision_0003(url, then="0009")
    taken = QueuedCall(900, "support", "callback", wait_s=30, start=T0, caller="+555")
    backs = [
        call_back(901, taken, 1, "retry", T0 + 60),
        call_back(902, taken, 2, "failed", T0 + 120),
    ]
    engine = sa.create_engine(driver_url(url))
    with engine.begin() as conn:
        conn.execute(cdrs.insert(), [cdr_row("site-a", raw, 1)._asdict()
                                     for raw in (taken.cdr(), *backs)])  # fmt: skip
    engine.dispose()
    engine, migration = migrated_engine(url)
    try:
        assert (migration.before, migration.after) == ("0009", migrate.head())
        with engine.connect() as conn:
            kept = conn.execute(sa.select(queue_callbacks)).all()
            offered = conn.execute(sa.select(queue_unanswered.c.callback_offered)).scalars().all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in kept] == [
        ("site-a", taken.call_id, "+555", int(T0 * 1000), 2, "failed", None)
    ]
    assert offered
    assert not any(offered)
