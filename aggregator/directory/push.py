"""Which routing snapshot or updates each connected site needs (Clone pattern).

Theory of operation: a site reports the version it runs in ``hello``, in every
``status`` and in each ``snapshot-result``. Every few hundred milliseconds ``due`` compares
that with the version stored at HQ: a site one or more versions behind, for which the
consecutive updates are still kept, is sent those ``update`` messages; any other site
behind is sent the full ``snapshot``. A version is sent once per session — a refused one
is not sent again until HQ has a newer version. Only the ingest worker thread calls in,
so the bookkeeping needs no lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from aggregator.directory.store import full_table
from aggregator.store.schema import snapshot_updates, snapshots
from drivers.sync.protocol import Message, Snapshot, SnapshotResult, Update

Key = tuple[str, str]


class SnapshotPusher:
    """Per-site snapshot versions: reported, sent, and what to send next."""

    def __init__(self, engine: Callable[[], sa.Engine]) -> None:
        self._engine = engine
        self._have: dict[Key, int] = {}
        self._sent: dict[Key, int] = {}

    def on_hello(self, conn: sa.Connection, site_id: str, versions: Mapping[str, Any]) -> None:
        """A new session: forget what was sent, remember what the site runs."""
        for key in [k for k in self._sent if k[0] == site_id]:
            del self._sent[key]
        self.on_running(conn, site_id, versions)
        for topic in versions:
            self._sent[(site_id, topic)] = self._have[(site_id, topic)]

    def on_running(self, conn: sa.Connection, site_id: str, versions: Mapping[str, Any]) -> None:
        """The site runs these versions (from ``hello`` or ``status``); record changes."""
        for topic, version in versions.items():
            if not isinstance(topic, str) or type(version) is not int:
                continue
            if self._have.get((site_id, topic)) != version:
                self._have[(site_id, topic)] = version
                conn.execute(_applied(site_id, topic).values(applied_version=version))

    def on_request(self, conn: sa.Connection, site_id: str, topic: str, have: int) -> list[Message]:
        """Answer ``snapshot-request``: the full snapshot, unless ``have`` is current."""
        self._have[(site_id, topic)] = have
        found = full_table(conn, site_id, topic)
        if found is None:
            return [Snapshot(topic, 0, None)]
        version, data = found
        self._sent[(site_id, topic)] = version
        return [] if version == have else [Snapshot(topic, version, data)]

    def on_result(self, conn: sa.Connection, site_id: str, result: SnapshotResult) -> None:
        """Record an applied or refused snapshot; the site runs ``result.running``."""
        self._have[(site_id, result.topic)] = result.running
        reason = "" if result.ok else f"version {result.version}: {result.reason}"[:512]
        conn.execute(
            _applied(site_id, result.topic).values(
                applied_version=result.running, refused_reason=reason
            )
        )

    def due(self, sites: Iterable[str]) -> list[tuple[str, Message]]:
        """The messages connected ``sites`` need now, in sending order."""
        known = {s for s, _ in self._have}.intersection(sites)
        if not known:
            return []
        query = sa.select(snapshots.c.site_id, snapshots.c.topic, snapshots.c.version).where(
            snapshots.c.site_id.in_(sorted(known))
        )
        out: list[tuple[str, Message]] = []
        with self._engine().begin() as conn:
            for row in conn.execute(query).all():
                key = (row.site_id, row.topic)
                if key not in self._have or self._sent.get(key) == row.version:
                    continue
                self._sent[key] = row.version
                out += [
                    (row.site_id, m) for m in _catch_up(conn, key, self._have[key], row.version)
                ]
        return out


def _catch_up(conn: sa.Connection, key: Key, have: int, version: int) -> list[Message]:
    site_id, topic = key
    if have < version:
        rows = conn.execute(
            sa.select(snapshot_updates)
            .where(
                snapshot_updates.c.site_id == site_id,
                snapshot_updates.c.topic == topic,
                snapshot_updates.c.version > have,
                snapshot_updates.c.version <= version,
            )
            .order_by(snapshot_updates.c.version)
        ).all()
        steps = [(r.base_version, r.version) for r in rows]
        if steps == [(v, v + 1) for v in range(have, version)]:
            return [Update(topic, r.version, r.base_version, r.changes) for r in rows]
    found = full_table(conn, site_id, topic)
    return [] if found is None else [Snapshot(topic, *found)]


def _applied(site_id: str, topic: str) -> sa.Update:
    return sa.update(snapshots).where(snapshots.c.site_id == site_id, snapshots.c.topic == topic)
