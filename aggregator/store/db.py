"""Engine creation and dialect-specific statements (SQLite and PostgreSQL).

SQLite runs in WAL mode with ``synchronous=FULL``: a commit that returned is on disk,
which is what an acknowledgement to an appliance promises. The page cache (64 MiB) holds
the hot ends of the CDR indexes, and checkpoints run every 10,000 WAL pages (about
40 MB) instead of 1,000, so index pages changed by many commits are copied into the
database once per checkpoint rather than ten times; neither changes what a commit
guarantees.

PostgreSQL is always reached through psycopg 3 (``postgresql+psycopg``), whatever driver
the URL names, because CDR ingest uses its COPY support (aggregator/store/pg_copy.py).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from aggregator.store.migrate import Migration, MigrationError, upgrade


class DatabaseError(Exception):
    """The report database cannot be reached or used."""


def create_engine(url: str) -> sa.Engine:
    """An engine with the durability settings callmesh relies on, schema migrated."""
    return migrated_engine(url)[0]


def migrated_engine(url: str) -> tuple[sa.Engine, Migration]:
    """``create_engine``, and what the migration found and left."""
    engine = sa.create_engine(driver_url(url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    try:
        return engine, upgrade(engine)
    except (sa.exc.SQLAlchemyError, MigrationError) as err:
        engine.dispose()
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        raise DatabaseError(f"cannot use database {shown}: {err.__cause__ or err}") from None


def driver_url(url: str) -> sa.URL:
    """``url`` with PostgreSQL's driver set to psycopg 3."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.close()


def insert(engine: sa.Engine, table: sa.Table) -> Any:
    """An INSERT that supports ON CONFLICT on this engine's dialect."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
