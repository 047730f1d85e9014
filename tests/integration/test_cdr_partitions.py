"""Monthly CDR partitions on a real PostgreSQL server: migration, ingest, retention."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from pydantic import ValidationError

from aggregator import reports, service
from aggregator.ingest_metrics import IngestMetrics
from aggregator.refusals import Refusals
from aggregator.settings import AggregatorSettings
from aggregator.store import migrate
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import create_engine, driver_url, migrated_engine
from aggregator.store.partitions import Month, existing_months, schema_differences, this_month
from aggregator.store.schema import cdrs, metadata
from appliance.cli.main import main
from drivers.daemon.observability import new_registry
from tests.first_release import make_first_release_db, spread_cdr
from tests.pg import fresh_database, postgres_server
from tests.sync_env import make_cdr

MS_PER_DAY = 86_400_000


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def empty_pg(pg_url: str) -> Iterator[str]:
    with fresh_database(pg_url, "partitions") as url:
        yield url


def at_revision(url: str, revision: str) -> None:
    """Bring a first-release database to ``revision`` (an older release's schema)."""
    engine = sa.create_engine(driver_url(url))
    with engine.begin() as conn:
        config = migrate._config(conn)
        command.stamp(config, migrate.FIRST_RELEASE)
        command.upgrade(config, revision)
    engine.dispose()


def relkind(conn: sa.Connection) -> str:
    return str(conn.scalar(sa.text("SELECT relkind FROM pg_class WHERE relname = 'cdrs'")))


def count(conn: sa.Connection, table: str = "cdrs") -> int:
    # Only the test's own table names go into the text.
    return int(conn.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)  # noqa: S608


def cdr_in(month: Month, n: int) -> bytes:
    """CDR ``n`` started on the 10th of ``month``."""
    start = month.start_ms / 1000 + 9 * 86_400 + n
    return make_cdr(n, start=start, answer=start + 2, end=start + 30)


def test_a_0003_database_is_partitioned_by_month_with_its_rows_and_keys_kept(
    empty_pg: str,
) -> None:
    before = make_first_release_db(empty_pg, cdrs=150)
    at_revision(empty_pg, "0003")
    engine, migration = migrated_engine(empty_pg)
    assert (migration.before, migration.after) == ("0003", migrate.head())
    with engine.connect() as conn:
        assert relkind(conn) == "p"
        assert count(conn) == before.cdrs
        held = {Month.of(day) for day in before.calls_by_day}
        months = existing_months(conn)
        assert held <= months
        assert {this_month().plus(n) for n in range(3)} <= months
        per_month = {m: count(conn, m.name) for m in held}
        assert schema_differences(conn, metadata) == []
    assert sum(per_month.values()) == before.cdrs
    assert all(per_month.values())
    store = CdrStore(engine)
    again = store.ingest(before.site_id, [(n + 1, spread_cdr(n)) for n in range(200)])
    assert (again.inserted, again.duplicates) == (50, 150)
    engine.dispose()


def test_the_partitioning_is_undone_by_a_downgrade_and_redone_with_the_rows(
    empty_pg: str,
) -> None:
    before = make_first_release_db(empty_pg, cdrs=60)
    create_engine(empty_pg).dispose()
    engine = sa.create_engine(driver_url(empty_pg))
    with engine.begin() as conn:
        command.downgrade(migrate._config(conn), "0006")
    with engine.connect() as conn:
        assert (relkind(conn), count(conn)) == ("r", before.cdrs)
    engine.dispose()
    engine = create_engine(empty_pg)
    with engine.connect() as conn:
        assert (relkind(conn), count(conn)) == ("p", before.cdrs)
    engine.dispose()


def test_ingest_across_two_months_stores_each_cdr_once_and_creates_missing_months(
    empty_pg: str,
) -> None:
    engine = create_engine(empty_pg)
    store = CdrStore(engine)
    late = Month(2031, 5)  # no partition is made this far ahead
    with engine.connect() as conn:
        assert late not in existing_months(conn)
    first, second = this_month(), this_month().plus(-1)
    batch = [(n + 1, cdr_in(first if n % 2 else second, n)) for n in range(400)]
    batch.append((401, cdr_in(late, 400)))
    assert store.ingest("site-a", batch).inserted == 401
    assert store.ingest("site-a", batch[:300]).duplicates == 300
    with engine.connect() as conn:
        assert count(conn) == 401
        assert (count(conn, first.name), count(conn, second.name)) == (200, 200)
        assert count(conn, late.name) == 1
    engine.dispose()


def test_retention_drops_old_months_and_the_reports_still_answer(
    empty_pg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = create_engine(empty_pg)
    store = CdrStore(engine)
    old, kept = this_month().plus(-6), this_month().plus(-1)
    batch = [(n + 1, cdr_in(old if n < 100 else kept, n)) for n in range(300)]
    assert store.ingest("site-a", batch).inserted == 300
    config = tmp_path / "agg.yaml"
    config.write_text(f"data_dir: {tmp_path}\ndatabase:\n  url: {empty_pg}\n")
    assert main(["aggregator", "retention", "-c", str(config), "--keep-months", "3"]) == 0
    assert old.name in capsys.readouterr().out
    zone = reports.zone("UTC")
    start = old.start_ms + 9 * MS_PER_DAY
    with engine.connect() as conn:
        months = existing_months(conn)
        assert old not in months
        assert kept in months
        assert conn.scalar(sa.select(sa.func.count()).select_from(cdrs)) == 200
        (day,) = reports.summary(conn, None, start, start + MS_PER_DAY, zone, "day")
    assert day["calls"] == 100
    again = store.ingest("site-a", batch[100:])
    assert (again.inserted, again.duplicates) == (0, 200)
    engine.dispose()


def test_the_ingest_worker_drops_old_months_and_makes_the_next_ones(
    empty_pg: str, tmp_path: Path
) -> None:
    engine = create_engine(empty_pg)
    old = this_month().plus(-4)
    assert CdrStore(engine).ingest("site-a", [(1, cdr_in(old, 1))]).inserted == 1
    settings = AggregatorSettings.model_validate(
        {"data_dir": str(tmp_path), "database": {"url": empty_pg, "keep_months": 3}}
    )
    metrics = IngestMetrics(new_registry("aggregator", {}))
    refusals = Refusals(metrics.records_refused, 10, 100)
    _, features = service._sync_features(settings, lambda: engine, metrics, refusals)
    (retention,) = [p for p in features.periodic if p.name == "CDR retention"]
    assert retention.interval_s == service.RETENTION_INTERVAL_S
    retention.run()
    with engine.connect() as conn:
        assert old not in existing_months(conn)
        assert count(conn) == 0
    (ahead,) = [p for p in features.periodic if p.name == "CDR months ahead"]
    last = this_month().plus(2)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {last.name}"))
    ahead.run()
    with engine.connect() as conn:
        assert last in existing_months(conn)
    engine.dispose()


def test_the_retention_setting_needs_postgres(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"database\.keep_months drops PostgreSQL"):
        AggregatorSettings.model_validate(
            {"data_dir": str(tmp_path), "database": {"keep_months": 3}}
        )


def test_retention_is_refused_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "agg.yaml"
    config.write_text(f"data_dir: {tmp_path}\n")
    assert main(["aggregator", "retention", "-c", str(config), "--keep-months", "3"]) == 2
    assert "PostgreSQL" in capsys.readouterr().err
