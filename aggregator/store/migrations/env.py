"""Alembic environment: runs revisions on the connection aggregator/store/migrate.py passes.

SQLite cannot alter most of a table in place, so there revisions run in batch mode
(copy the table, move the rows, swap), which Alembic's ``batch_alter_table`` does.
"""

from __future__ import annotations

from alembic import context

from aggregator.store.schema import metadata

_connection = context.config.attributes["connection"]
context.configure(
    connection=_connection,
    target_metadata=metadata,
    render_as_batch=_connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
