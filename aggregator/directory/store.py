"""The directory in the aggregator's database, and the routing snapshots compiled from it.

Theory of operation: every write — the whole directory or one entry — runs in one
transaction: read the directory (the plan row locked FOR UPDATE on PostgreSQL, a
process lock on SQLite), change it in memory, validate the result as a whole, write the
rows that differ, then compile every site's table and store the tables that changed
under the next version with the changes from the previous one. The entries all tables
share are stored once, in the row of site ``*``; a site's snapshot is that row's data
overlaid with its own row's. A refused change leaves the directory and every snapshot
as they were.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from aggregator.directory.compile import Compiled, compile_directory
from aggregator.directory.model import Directory, NumberingPlan, Rule, Site, Trunk
from aggregator.directory.validate import validate
from aggregator.store.db import insert
from aggregator.store.schema import (
    directory_plan,
    directory_rules,
    directory_sites,
    directory_trunks,
    snapshot_updates,
    snapshots,
)
from drivers.sync.records import RoutingChanges
from drivers.sync.routing_changes import between

TOPIC = "routing"
SHARED = "*"  # the snapshots row holding the entries every site's table shares
MAX_UPDATE_ENTRIES = 5000  # a bigger change is sent as a full snapshot
_ENTITIES: tuple[tuple[str, sa.Table, type[BaseModel]], ...] = (
    ("sites", directory_sites, Site),
    ("trunks", directory_trunks, Trunk),
    ("rules", directory_rules, Rule),
)


@dataclass(frozen=True)
class Published:
    """What a directory write changed: its revision and the sites given a new table."""

    revision: int
    versions: dict[str, int]


class DirectoryStore:
    """Reads and writes the directory; every write republishes the routing tables."""

    def __init__(self, engine: Callable[[], sa.Engine], keep_updates: int = 16) -> None:
        self._engine = engine
        self._keep = keep_updates
        self._lock = threading.Lock()

    def read(self) -> tuple[Directory, int]:
        """The directory and its revision."""
        with self._engine().connect() as conn:
            return _load(conn), _revision(conn)

    def change(self, edit: Callable[[Directory], Directory]) -> Published:
        """Apply ``edit`` to the directory atomically; DirectoryError if the result is bad."""
        with self._lock, self._engine().begin() as conn:
            revision = _lock_plan(conn)
            old = _load(conn)
            new = edit(old)
            validate(new)
            _save(conn, old, new)
            conn.execute(
                sa.update(directory_plan)
                .where(directory_plan.c.id == 1)
                .values(revision=revision + 1, updated_ms=int(time.time() * 1000))
            )
            versions = self._publish(conn, compile_directory(new))
        return Published(revision + 1, versions)

    def snapshot_states(self) -> list[dict[str, Any]]:
        """Per site: the routing version at HQ, the one the site runs, and any refusal."""
        query = (
            sa.select(snapshots)
            .where(snapshots.c.topic == TOPIC, snapshots.c.site_id != SHARED)
            .order_by(snapshots.c.site_id)
        )
        with self._engine().connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "site_id": r.site_id,
                "version": r.version,
                "applied_version": r.applied_version,
                "refused_reason": r.refused_reason,
            }
            for r in rows
        ]

    def _publish(self, conn: sa.Connection, compiled: Compiled) -> dict[str, int]:
        query = sa.select(snapshots.c.site_id, snapshots.c.version, snapshots.c.data).where(
            snapshots.c.topic == TOPIC
        )
        current = {r.site_id: r for r in conn.execute(query)}
        now = int(time.time() * 1000)
        shared_row = current.pop(SHARED, None)
        shared_changes = between(shared_row.data if shared_row else {}, compiled.shared)
        puts: list[dict[str, Any]] = []
        if shared_row is None or shared_changes.size:
            version = (shared_row.version if shared_row else 0) + 1
            puts.append(_snapshot_row(SHARED, version, compiled.shared))
        updates: list[dict[str, Any]] = []
        versions = {}
        for site_id, entries in compiled.own.items():
            row = current.get(site_id)
            if row is not None and row.data == entries and not shared_changes.size:
                continue
            version = (row.version if row is not None else 0) + 1
            versions[site_id] = version
            puts.append(_snapshot_row(site_id, version, entries))
            if row is not None and isinstance(row.data, dict):
                changes = between(row.data, entries).over(shared_changes)
                if changes.size <= MAX_UPDATE_ENTRIES:
                    updates.append(_update_row(site_id, version, row.version, changes, now))
        self._write(conn, puts, updates)
        return versions

    def _write(
        self, conn: sa.Connection, puts: list[dict[str, Any]], updates: list[dict[str, Any]]
    ) -> None:
        """Store new versions and their updates in batches; drop updates past ``keep``."""
        if puts:
            stmt = insert(conn.engine, snapshots)
            stmt = stmt.on_conflict_do_update(
                index_elements=["site_id", "topic"],
                set_={"version": stmt.excluded.version, "data": stmt.excluded.data},
            )
            conn.execute(stmt, puts)
        if updates:
            conn.execute(sa.insert(snapshot_updates), updates)
            latest = (
                sa.select(snapshots.c.version)
                .where(
                    snapshots.c.site_id == snapshot_updates.c.site_id,
                    snapshots.c.topic == snapshot_updates.c.topic,
                )
                .scalar_subquery()
            )
            conn.execute(
                sa.delete(snapshot_updates).where(
                    snapshot_updates.c.topic == TOPIC,
                    snapshot_updates.c.version <= latest - self._keep,
                )
            )


def _snapshot_row(site_id: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
    return {"site_id": site_id, "topic": TOPIC, "version": version, "data": data}


def _update_row(
    site_id: str, version: int, base_version: int, changes: RoutingChanges, now: int
) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "topic": TOPIC,
        "version": version,
        "base_version": base_version,
        "changes": changes.to_doc(),
        "created_ms": now,
    }


def full_table(conn: sa.Connection, site_id: str, topic: str) -> tuple[int, Any] | None:
    """A site's complete snapshot: its own entries over the shared ones, and its version."""
    query = sa.select(snapshots.c.site_id, snapshots.c.version, snapshots.c.data).where(
        snapshots.c.topic == topic, snapshots.c.site_id.in_([site_id, SHARED])
    )
    rows = {r.site_id: r for r in conn.execute(query)}
    row = rows.get(site_id)
    if row is None:
        return None
    shared = rows.get(SHARED)
    if shared is None or not isinstance(row.data, dict):
        return row.version, row.data
    return row.version, {**shared.data, **row.data}


def _lock_plan(conn: sa.Connection) -> int:
    stmt = insert(conn.engine, directory_plan).on_conflict_do_nothing(index_elements=["id"])
    conn.execute(stmt, {"id": 1, "flat": True, "site_prefix": "", "revision": 0})
    query = sa.select(directory_plan.c.revision).where(directory_plan.c.id == 1).with_for_update()
    return int(conn.execute(query).scalar_one())


def _revision(conn: sa.Connection) -> int:
    query = sa.select(directory_plan.c.revision).where(directory_plan.c.id == 1)
    return int(conn.execute(query).scalar() or 0)


def _load(conn: sa.Connection) -> Directory:
    plan = conn.execute(sa.select(directory_plan).where(directory_plan.c.id == 1)).first()
    parts: dict[str, Any] = {
        name: [model.model_validate(dict(r._mapping)) for r in conn.execute(_ordered(table))]
        for name, table, model in _ENTITIES
    }
    if plan is not None:
        parts["plan"] = NumberingPlan(flat=plan.flat, site_prefix=plan.site_prefix)
    return Directory(**parts)


def _ordered(table: sa.Table) -> sa.Select[Any]:
    return sa.select(table).order_by(table.c.id)


def _save(conn: sa.Connection, old: Directory, new: Directory) -> None:
    conn.execute(
        sa.update(directory_plan)
        .where(directory_plan.c.id == 1)
        .values(flat=new.plan.flat, site_prefix=new.plan.site_prefix)
    )
    for name, table, _ in _ENTITIES:
        before = _rows(getattr(old, name))
        after = _rows(getattr(new, name))
        stale = [k for k in before if after.get(k) != before[k]]
        if stale:
            conn.execute(sa.delete(table).where(table.c.id.in_(stale)))
        fresh = [row for k, row in after.items() if before.get(k) != row]
        if fresh:
            conn.execute(sa.insert(table), fresh)


def _rows(entries: Iterable[BaseModel]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in (e.model_dump(mode="json") for e in entries)}
