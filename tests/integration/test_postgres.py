"""The aggregator on a real PostgreSQL server: the same code as on SQLite."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator import recording_store, reports
from aggregator.recordings import RecordingReceiver
from aggregator.settings import RecordingStoreSettings
from aggregator.store import migrate
from aggregator.store.cdr_rows import parse_batch
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import create_engine, migrated_engine
from aggregator.store.partitions import schema_differences
from aggregator.store.schema import cdr_rollup, cdr_rollup_daily, cdrs, metadata, recordings
from drivers.sync.protocol import RecChunk, RecDone, RecOffer
from tests.first_release import make_first_release_db, spread_cdr
from tests.integration.test_sync import start_aggregator, start_appliance, stored_ids
from tests.pg import fresh_database, postgres_server
from tests.sync_env import make_cdr, make_env, wait_for


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def clean_pg(pg_url: str) -> str:
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        tables = ("cdrs", "cdr_rollup", "cdr_rollup_daily", "rejected_records", "sites")
        for table in (*tables, "recordings", "recordings_expired"):
            conn.execute(sa.text(f"TRUNCATE {table}"))
    engine.dispose()
    return pg_url


@pytest.fixture
def empty_pg(pg_url: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    with fresh_database(pg_url, "migration") as url:
        yield url


def test_a_first_release_postgres_database_is_upgraded_with_its_data_kept(empty_pg: str) -> None:
    before = make_first_release_db(empty_pg, cdrs=200)
    engine, migration = migrated_engine(empty_pg)
    assert (migration.before, migration.after) == (migrate.FIRST_RELEASE, migrate.head())
    result = CdrStore(engine).ingest(before.site_id, [(n + 1, spread_cdr(n)) for n in range(250)])
    assert (result.inserted, result.duplicates) == (50, 200)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(cdrs)) == 250
        daily = sa.select(cdr_rollup_daily.c.day_ms, cdr_rollup_daily.c.calls).where(
            cdr_rollup_daily.c.dim == "site"
        )
        by_day = dict(conn.execute(daily).all())
        assert sum(by_day.values()) == 250
        assert all(by_day[day] >= calls for day, calls in before.calls_by_day.items())
        differences = schema_differences(conn, metadata)
    assert differences == []
    engine.dispose()


def test_aggregator_nodes_starting_together_migrate_once(empty_pg: str) -> None:
    make_first_release_db(empty_pg)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        started = list(pool.map(migrated_engine, [empty_pg] * 3))
    befores = sorted(str(migration.before) for _, migration in started)
    assert befores == sorted([migrate.FIRST_RELEASE, migrate.head(), migrate.head()])
    for engine, _ in started:
        engine.dispose()


def test_ingest_is_idempotent_and_reports_work_on_postgres(clean_pg: str) -> None:
    engine = create_engine(clean_pg)
    store = CdrStore(engine)
    batch = [(n + 1, make_cdr(n)) for n in range(2000)]
    assert store.ingest("site-a", batch).inserted == 2000
    again = store.ingest("site-a", batch[:500])
    assert (again.inserted, again.duplicates) == (0, 500)
    zone = reports.zone("UTC")
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(cdrs)) == 2000
        (day,) = reports.summary(
            conn,
            None,
            reports.parse_time("2025-11-24", zone),
            reports.parse_time("2025-11-25", zone),
            zone,
            "day",
        )
        page, cursor = reports.search_cdrs(conn, reports.CdrFilter(), zone, 10, None)
    assert day["calls"] == 2000
    assert day["answered"] == 1500
    assert len(page) == 10
    assert cursor is not None
    engine.dispose()


def test_copy_ingest_stores_each_cdr_once_within_and_across_groups(clean_pg: str) -> None:
    engine = create_engine(clean_pg)
    store = CdrStore(engine)
    first = [(n + 1, make_cdr(n)) for n in range(300)]
    overlap = [(n + 1, make_cdr(n)) for n in range(200, 400)]
    group = [parse_batch("site-a", first), parse_batch("site-a", overlap)]
    group.append(parse_batch("site-b", first[:50]))
    results = store.store_many(group)
    assert [(r.inserted, r.duplicates) for r in results] == [(300, 0), (100, 100), (50, 0)]
    again = store.store_many([parse_batch("site-a", overlap), parse_batch("site-b", first)])
    assert [(r.inserted, r.duplicates) for r in again] == [(0, 200), (250, 50)]
    with engine.connect() as conn:
        stored = conn.execute(sa.select(cdrs.c.site_id, sa.func.count()).group_by(cdrs.c.site_id))
        assert dict(stored.all()) == {"site-a": 400, "site-b": 300}
        rollup = sa.select(cdr_rollup.c.site_id, sa.func.sum(cdr_rollup.c.calls)).where(
            cdr_rollup.c.dim == "site"
        )
        calls = conn.execute(rollup.group_by(cdr_rollup.c.site_id)).all()
        assert dict(calls) == {"site-a": 400, "site-b": 300}
    engine.dispose()


def test_copy_ingest_leaves_nothing_behind_when_a_group_fails(clean_pg: str) -> None:
    engine = create_engine(clean_pg)
    store = CdrStore(engine)
    batch = parse_batch("site-a", [(n + 1, make_cdr(n)) for n in range(100)])
    first_id = next(iter(batch.rows))
    too_long = batch.rows[first_id]._replace(trunk="t" * 65)
    broken = dataclasses.replace(batch, rows={**batch.rows, first_id: too_long})
    with pytest.raises(sa.exc.DBAPIError):
        store.store_many([broken])
    assert store.store_many([batch])[0].inserted == 100
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(cdrs)) == 100
    engine.dispose()


def test_cdrs_sync_into_postgres_across_an_aggregator_kill(tmp_path: Path, clean_pg: str) -> None:
    env = make_env(tmp_path, db_url=clean_pg)
    env.prefill(30_000)
    agg, app = start_aggregator(env), start_appliance(env)
    try:
        wait_for(lambda: env.ingested() > 1000, 60, "the stream to start", interval=0.02)
        agg.proc.send_signal(signal.SIGKILL)
        agg.proc.wait(timeout=10)
        agg.close()
        agg = start_aggregator(env, "agg2.log")
        wait_for(lambda: env.ingested() == 30_000, 120, "30000 CDRs in PostgreSQL")
        wait_for(lambda: env.pending() == 0, 60, "an empty outbox")
    finally:
        app.close()
        agg.close()
    assert sorted(stored_ids(env, clean_pg)) == list(range(30_000))


def test_recording_quota_retention_and_states_work_on_postgres(
    tmp_path: Path, clean_pg: str
) -> None:
    engine = create_engine(clean_pg)
    limits = RecordingStoreSettings(site_quota_mb=1, retention_days=1)
    rx = RecordingReceiver(engine, tmp_path / "recordings", 16, limits)
    payload = b"w" * 600_000
    offer = RecOffer("r1", len(payload), hashlib.sha256(payload).hexdigest(), {"cdr_id": "c1"})
    try:
        rx.offer("site-a", offer)
        assert rx.chunk("site-a", RecChunk("r1", 0, payload)) == RecDone("r1", True, "stored")
        over = rx.offer("site-a", RecOffer("r2", len(payload), offer.sha256, {}))
        assert isinstance(over, RecDone)
        assert over.reason.startswith("quota-exceeded:")
        with engine.begin() as conn:
            conn.execute(sa.update(recordings).values(stored_ms=0))
        assert rx.sweep() == (0, 1)
    finally:
        rx.close()
    with engine.connect() as conn:
        found = recording_store.states(conn, [("site-a", "r1"), ("site-a", "r9")])
        assert found == {("site-a", "r1"): "expired", ("site-a", "r9"): "pending"}
        assert recording_store.site_bytes(conn, "site-a") == 0
    engine.dispose()


def test_two_nodes_sweeping_at_once_expire_each_recording_once(clean_pg: str) -> None:
    engine = create_engine(clean_pg)
    row = {"site_id": "site-a", "size": 1, "stored_ms": 0, "meta": {}}
    with engine.begin() as conn:
        for n in range(4):
            sha = f"{n:064x}"
            conn.execute(
                sa.insert(recordings).values(
                    **row, recording_id=f"r{n}", sha256=sha, path=f"{sha[:2]}/{sha}"
                )
            )
    try:
        with engine.begin() as node_1:
            moved_1, _ = recording_store.expire(node_1, 1, 2, limit=3)
            with engine.begin() as node_2:
                node_2.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
                moved_2, _ = recording_store.expire(node_2, 1, 2)
        assert (moved_1, moved_2) == (3, 1)
        with engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.count()).select_from(recordings)) == 0
    finally:
        engine.dispose()
