"""CDR rows into PostgreSQL by COPY, stored once per (site id, CDR id).

A group's rows are streamed with ``COPY ... FROM STDIN (FORMAT BINARY)`` into a
session-local staging table, then moved with one ``INSERT ... SELECT ... ON CONFLICT DO
NOTHING RETURNING`` into ``cdrs``. The staging table is temporary and empties itself at
every commit or rollback (``ON COMMIT DELETE ROWS``), so it never carries rows from one
transaction into the next; it is created on first use in each database session. This is
the bulk path the PostgreSQL documentation recommends for loading: rows are not parsed as
SQL text, and raw COPY measured two to four times the rate of multi-row ``VALUES``
(bench/RESULTS.md).

``cdrs`` is partitioned by month (aggregator/store/partitions.py): before the group's
transaction touches it, the months of the group's rows are checked against the known
partitions and a missing one is created; the dedupe key holds the start
(``site_id, cdr_id, started_ms``), which a redelivered CDR repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from aggregator.store.cdr_rows import CdrRow
from aggregator.store.partitions import COVERAGE

_COLUMNS = CdrRow._fields
_COLUMN_LIST = ", ".join(_COLUMNS)
# psycopg type names for a binary COPY, in CdrRow's order.
_COPY_TYPES = (
    ["text"] * 11 + ["int8", "int8", "int8", "float8", "float8"] + ["text"] * 4 + ["bytea", "int8"]
)
# Only schema column names go into these texts; values travel by COPY.
_CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS cdrs_staging ON COMMIT DELETE ROWS AS "  # noqa: S608
    f"SELECT {_COLUMN_LIST} FROM cdrs WITH NO DATA"
)
_COPY = f"COPY cdrs_staging ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
_MOVE = (
    f"INSERT INTO cdrs ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM cdrs_staging "  # noqa: S608
    "ON CONFLICT (site_id, cdr_id, started_ms) DO NOTHING RETURNING site_id, cdr_id"
)


def copy_new_rows(conn: sa.Connection, rows: Sequence[CdrRow]) -> set[tuple[str, str]]:
    """Store ``rows`` inside ``conn``'s transaction; the (site, CDR id) keys that were new."""
    if not rows:
        return set()
    COVERAGE.ensure(conn.engine, [row.started_ms for row in rows])
    driver: Any = conn.connection.driver_connection
    driver_error = conn.dialect.loaded_dbapi.Error
    try:
        with driver.cursor() as cursor:
            cursor.execute(_CREATE_STAGING)
            with cursor.copy(_COPY) as copy:
                copy.set_types(_COPY_TYPES)
                for row in rows:
                    copy.write_row(row)
            cursor.execute(_MOVE)
            return {(site_id, cdr_id) for site_id, cdr_id in cursor.fetchall()}
    except driver_error as err:
        # Raised as SQLAlchemy would, so callers tell database failures from bugs alike
        # on every path.
        raise sa.exc.DBAPIError.instance(_COPY, None, err, driver_error) from err
