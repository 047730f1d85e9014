"""Pending commands for connected sites, sent once per session as soon as they are issued.

``hello`` already sends every pending command; ``due`` covers commands issued while the
site is connected. A command goes again only in a new session (or after HQ restarts),
until the site answers with ``command-result``. Only the ingest worker thread calls in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import sqlalchemy as sa

from aggregator.store.schema import commands
from drivers.sync.protocol import Command, Message


class CommandPusher:
    """Which pending commands each connected site has been sent in its current session."""

    def __init__(self, engine: Callable[[], sa.Engine]) -> None:
        self._engine = engine
        self._sent: dict[str, set[str]] = {}

    def on_hello(self, site_id: str, sent: Iterable[str]) -> None:
        """A new session, in which ``hello`` was answered with ``sent``."""
        self._sent[site_id] = set(sent)

    def due(self, sites: Iterable[str]) -> list[tuple[str, Message]]:
        """Commands pending for ``sites`` that this session has not carried yet."""
        known = sorted(set(sites).intersection(self._sent))
        if not known:
            return []
        query = (
            sa.select(commands)
            .where(commands.c.site_id.in_(known), commands.c.done_ms.is_(None))
            .order_by(commands.c.created_ms)
        )
        with self._engine().connect() as conn:
            rows = conn.execute(query).all()
        out: list[tuple[str, Message]] = []
        for row in rows:
            if row.command_id not in self._sent[row.site_id]:
                self._sent[row.site_id].add(row.command_id)
                out.append((row.site_id, Command(row.command_id, row.kind, dict(row.args))))
        return out
