"""The directory on the sync link: snapshots and updates pushed, requests and results heard."""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa

from aggregator.directory.push import SnapshotPusher
from drivers.sync.protocol import Hello, Message, SnapshotRequest, SnapshotResult, Status

log = logging.getLogger(__name__)


class DirectorySync:
    """Handlers and hooks around the snapshot pusher; on the ingest worker thread."""

    def __init__(self, engine: Callable[[], sa.Engine]) -> None:
        self._engine = engine
        self.pusher = SnapshotPusher(engine)

    def hello(self, conn: sa.Connection, site_id: str, hello: Hello) -> list[Message]:
        """A new session: the versions the site runs."""
        self.pusher.on_hello(conn, site_id, hello.snapshots)
        return []

    def status(self, conn: sa.Connection, site_id: str, status: Status) -> None:
        """The versions the site reports running."""
        running = status.health.get("snapshots")
        if isinstance(running, dict):
            self.pusher.on_running(conn, site_id, running)

    def request(self, site_id: str, request: Message) -> list[Message]:
        """``snapshot-request``: the snapshot or updates the site misses."""
        assert isinstance(request, SnapshotRequest)
        with self._engine().begin() as conn:
            return self.pusher.on_request(conn, site_id, request.topic, request.have_version)

    def result(self, site_id: str, result: Message) -> list[Message]:
        """``snapshot-result``: what the site did with a version."""
        assert isinstance(result, SnapshotResult)
        with self._engine().begin() as conn:
            self.pusher.on_result(conn, site_id, result)
        if not result.ok:
            log.warning(
                "site refused a snapshot",
                extra={"site": site_id, "version": result.version, "reason": result.reason},
            )
        return []
