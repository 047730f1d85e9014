"""Schema migrations: a first-release database is upgraded in place with its data."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from aggregator.store import migrate
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import DatabaseError, create_engine, migrated_engine
from aggregator.store.schema import cdr_rollup, cdr_rollup_daily, cdrs, metadata, sites
from appliance.cli.main import main
from tests.first_release import make_first_release_db, spread_cdr


def schema_differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def test_a_first_release_database_is_upgraded_with_its_data_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agg.db'}"
    before = make_first_release_db(url)
    engine, migration = migrated_engine(url)
    assert (migration.before, migration.after) == (migrate.FIRST_RELEASE, migrate.head())
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(cdrs)) == before.cdrs
        assert conn.scalar(sa.select(sites.c.cdrs_received)) == before.cdrs
        daily = sa.select(cdr_rollup_daily.c.day_ms, cdr_rollup_daily.c.calls).where(
            cdr_rollup_daily.c.dim == "site"
        )
        assert dict(conn.execute(daily).all()) == before.calls_by_day
    assert schema_differences(engine) == []
    engine.dispose()


def test_cdrs_stored_before_the_upgrade_are_still_recognised(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agg.db'}"
    before = make_first_release_db(url, cdrs=100)
    engine = create_engine(url)
    result = CdrStore(engine).ingest(before.site_id, [(n + 1, spread_cdr(n)) for n in range(150)])
    assert (result.inserted, result.duplicates) == (50, 100)
    with engine.connect() as conn:
        for table in (cdr_rollup, cdr_rollup_daily):
            site_calls = sa.select(sa.func.sum(table.c.calls)).where(table.c.dim == "site")
            assert conn.scalar(site_calls) == 150
    engine.dispose()


def test_a_new_database_is_created_at_the_newest_revision(tmp_path: Path) -> None:
    engine, migration = migrated_engine(f"sqlite:///{tmp_path / 'agg.db'}")
    assert (migration.before, migration.after) == (None, migrate.head())
    assert schema_differences(engine) == []
    engine.dispose()


def test_a_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agg.db'}"
    create_engine(url).dispose()
    raw = sa.create_engine(url)
    with raw.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    raw.dispose()
    with pytest.raises(DatabaseError, match="revision 9999, which this release does not know"):
        create_engine(url)


def test_migrate_command_upgrades_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agg.yaml"
    config.write_text(f"data_dir: {tmp_path}\n")
    make_first_release_db(f"sqlite:///{tmp_path / 'aggregator.db'}")
    assert main(["aggregator", "migrate", "-c", str(config)]) == 0
    assert main(["aggregator", "migrate", "-c", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"database schema upgraded from revision 0001 to {migrate.head()}",
        f"database schema already at revision {migrate.head()}",
    ]


def test_migrate_command_fails_with_one_line_when_the_database_cannot_be_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agg.yaml"
    config.write_text(f"data_dir: {tmp_path / 'missing'}\n")
    assert main(["aggregator", "migrate", "-c", str(config)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("callmesh: cannot use database sqlite:///")
