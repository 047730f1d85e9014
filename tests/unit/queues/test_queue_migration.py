"""Revisions 0004, 0008 and 0011 back-fill the per-queue rollups from the CDRs a database holds."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from aggregator.store import migrate
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import migrated_engine
from aggregator.store.schema import agent_rollup, queue_rollup, queue_rollup_daily, queue_unanswered
from tests.queue_migration import (
    CALLS,
    assert_callbacks_back_filled,
    assert_close,
    at_revision_0003,
    bucket_hand_count,
    bucket_sums,
    hand_count,
    sums,
)


def test_the_upgrade_from_0003_back_fills_the_queue_rollups(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agg.db'}"
    at_revision_0003(url)
    engine, migration = migrated_engine(url)
    assert (migration.before, migration.after) == ("0003", migrate.head())
    expected = hand_count(CALLS)
    assert_close(sums(engine, queue_rollup), expected)
    assert_close(sums(engine, queue_rollup_daily), expected)
    with engine.connect() as conn:
        by_agent = sa.select(agent_rollup.c.agent, sa.func.sum(agent_rollup.c.answered))
        answered = sum(c.outcome == "answered" for c in CALLS)
        assert conn.execute(by_agent.group_by(agent_rollup.c.agent)).all() == [("1003", answered)]
    again = CdrStore(engine).ingest("site-a", [(c.n, c.cdr()) for c in CALLS])
    assert again.duplicates == len(CALLS)
    assert_close(sums(engine, queue_rollup), expected)
    engine.dispose()


def test_the_upgrade_from_0007_counts_answer_times_and_keeps_the_calls_not_answered(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'agg.db'}"
    at_revision_0003(url, then="0007")
    engine, migration = migrated_engine(url)
    assert (migration.before, migration.after) == ("0007", migrate.head())
    expected = bucket_hand_count(CALLS)
    assert bucket_sums(engine, queue_rollup) == expected
    assert bucket_sums(engine, queue_rollup_daily) == expected
    assert_close(sums(engine, queue_rollup), hand_count(CALLS))  # the other counts unchanged
    with engine.connect() as conn:
        kept = conn.execute(sa.select(queue_unanswered.c.outcome)).scalars().all()
    assert sorted(kept) == sorted(c.outcome for c in CALLS if c.outcome != "answered")
    CdrStore(engine).ingest("site-a", [(c.n, c.cdr()) for c in CALLS])
    assert bucket_sums(engine, queue_rollup) == expected
    engine.dispose()


def test_the_upgrade_from_0009_keeps_each_callback_with_its_tries_and_status(
    tmp_path: Path,
) -> None:
    assert_callbacks_back_filled(f"sqlite:///{tmp_path / 'agg.db'}")
