"""The queue report per site-local day on SQLite (tests/queue_local.py; PostgreSQL in
tests/integration/test_queue_reports.py)."""

from __future__ import annotations

from pathlib import Path

from aggregator.store.db import create_engine
from tests import queue_local


def test_local_days_across_both_dst_changes_equal_the_raw_calls_then_a_move(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'agg.db'}")
    try:
        queue_local.check_local_days_across_dst(engine)
        queue_local.check_a_moved_site_reads_the_hourly_rollup(engine)
    finally:
        engine.dispose()


def test_the_upgrade_to_0010_fills_the_local_days(tmp_path: Path) -> None:
    queue_local.check_revision_0010_fills_the_local_days(f"sqlite:///{tmp_path / 'agg.db'}")
