"""Sites on the sync link: ``hello`` and ``status`` kept in the site's row.

Other features join a site's ``hello`` (their answers follow the ``welcome``) and its
``status`` with hooks that run in the same transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from prometheus_client import Gauge

from aggregator.store.db import insert
from aggregator.store.schema import sites
from drivers.sync.protocol import ErrorReply, Hello, Message, Status, Welcome

log = logging.getLogger(__name__)

HelloHook = Callable[[sa.Connection, str, Hello], list[Message]]
StatusHook = Callable[[sa.Connection, str, Status], None]


class SiteSessions:
    """Handles ``hello`` and ``status``; runs on the ingest worker thread."""

    def __init__(self, engine: Callable[[], sa.Engine], backlog: Gauge) -> None:
        self._engine = engine
        self._backlog = backlog
        self._hello_hooks: list[HelloHook] = []
        self._status_hooks: list[StatusHook] = []

    def on_hello(self, hook: HelloHook) -> None:
        """Run ``hook`` in each hello's transaction; its messages follow the welcome."""
        self._hello_hooks.append(hook)

    def on_status(self, hook: StatusHook) -> None:
        """Run ``hook`` in each status's transaction."""
        self._status_hooks.append(hook)

    def hello(self, site_id: str, hello: Message) -> list[Message]:
        """Welcome the site (recording it) unless it claims to be another site."""
        assert isinstance(hello, Hello)
        if hello.site_id != site_id:
            log.warning(
                "peer claims another site", extra={"site": site_id, "claimed": hello.site_id}
            )
            return [ErrorReply("site-mismatch", f"this key belongs to site {site_id!r}", "hello")]
        backlog = count(hello.backlog.get("cdr"))
        replies: list[Message] = [Welcome(time.time())]
        with self._engine().begin() as conn:
            conn.execute(_seen(conn, site_id, hello.software[:64], backlog))
            for hook in self._hello_hooks:
                replies += hook(conn, site_id, hello)
        self._backlog.labels(site=site_id).set(backlog)
        return replies

    def status(self, site_id: str, status: Message) -> list[Message]:
        """Keep the site's health and backlog as it reported them."""
        assert isinstance(status, Status)
        reported = status.health.get("backlog")
        backlog = count(reported.get("cdr") if isinstance(reported, dict) else None)
        with self._engine().begin() as conn:
            conn.execute(
                sa.update(sites)
                .where(sites.c.site_id == site_id)
                .values(
                    health=status.health,
                    backlog_cdr=backlog,
                    last_seen_ms=int(time.time() * 1000),
                )
            )
            for hook in self._status_hooks:
                hook(conn, site_id, status)
        self._backlog.labels(site=site_id).set(backlog)
        return []


def _seen(conn: sa.Connection, site_id: str, software: str, backlog: int) -> Any:
    """Insert the site, or mark it seen now with its software and backlog."""
    now = int(time.time() * 1000)
    row = {
        "site_id": site_id,
        "first_seen_ms": now,
        "last_seen_ms": now,
        "software": software,
        "backlog_cdr": backlog,
    }
    stmt = insert(conn.engine, sites).values(row)
    return stmt.on_conflict_do_update(
        index_elements=["site_id"],
        set_={"last_seen_ms": now, "software": software, "backlog_cdr": backlog},
    )


def count(value: Any) -> int:
    """A count a site reports, or 0 when it is not a count."""
    return value if type(value) is int and 0 <= value < 2**53 else 0
