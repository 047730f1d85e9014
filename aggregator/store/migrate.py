"""Schema migrations (Alembic): bring a database to the schema this release uses.

Run by the aggregator at start-up (``create_engine``) and by ``callmesh aggregator
migrate``. What a database gets depends on what it holds:

- nothing: every table is created from ``schema.metadata`` (on PostgreSQL ``cdrs`` is
  then partitioned by month, as revision 0007 does) and stamped with the newest
  revision (Alembic's recipe for a new database; replaying history would only be slower);
- tables but no ``alembic_version``: it was made by the first release's ``create_all``,
  so it is stamped with revision 0001 and upgraded from there;
- a known revision: upgraded to the newest one;
- a revision this release does not know: refused, since a newer release wrote it.

Revisions live in ``migrations/versions`` (one module each, written by hand like
``r0002_daily_rollup.py``); a test checks that the newest revision and ``schema.py``
describe the same tables. On PostgreSQL the work runs in one transaction under an
advisory lock, so aggregator nodes starting together migrate once, and each start
creates the CDR partitions of this month and the next ones (aggregator/store/partitions.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from aggregator.store.partitions import ensure_ahead, partition_cdrs
from aggregator.store.schema import metadata

log = logging.getLogger(__name__)

FIRST_RELEASE = "0001"
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key: "callmesh" in ASCII, so other users of the server never clash.
_LOCK_KEY = 0x63616C6C6D657368


class MigrationError(Exception):
    """The database's schema cannot be brought to this release's."""


@dataclass(frozen=True)
class Migration:
    """What ``upgrade`` found and left: revisions (``before`` None: the database was empty)."""

    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def head() -> str:
    """The newest revision this release knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def upgrade(engine: sa.Engine) -> Migration:
    """Bring the database behind ``engine`` to the newest revision."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
        before = _current(conn)
        config = _config(conn)
        if before is None and not sa.inspect(conn).get_table_names():
            metadata.create_all(conn)
            if conn.dialect.name == "postgresql":
                partition_cdrs(conn)
            command.stamp(config, "head")
        else:
            if before is None:
                command.stamp(config, FIRST_RELEASE)
                before = FIRST_RELEASE
            command.upgrade(config, "head")
        ensure_ahead(conn)
        migration = Migration(before, head())
    if migration.changed:
        log.info(
            "database schema upgraded",
            extra={"from_revision": migration.before, "to_revision": migration.after},
        )
    return migration


def _current(conn: sa.Connection) -> str | None:
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is not None and revision not in _known():
        raise MigrationError(
            f"the database schema is at revision {revision}, which this release does not "
            "know: it was written by a newer callmesh; run that release or restore a backup"
        )
    return revision


def _known() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def _config(conn: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = conn
    return config
