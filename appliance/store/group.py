"""Group commit: the writes of one short window share one LMDB transaction and one fsync.

Theory of operation: a caller stages a ``Staged`` write instead of committing it. The
first write staged starts a window (``window_s``, on the running event loop); when it
ends, or when ``max_writes`` are staged, every staged write goes into one write
transaction. Only after that commit returned does each write's ``committed`` run, so
whatever depends on the write being durable (an acknowledgement, a notification)
waits for the fsync. If the shared commit fails, nothing of it is on disk and each
write's ``alone`` runs instead: it retries that write by itself and handles its own
failure, so one bad write cannot take the others' fallbacks with it.

Without a running event loop (tools, tests that drive the owner directly) a write is
committed as soon as it is staged: exactly one write per commit, as before grouping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.store.environment import Store, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Staged:
    """One staged write and what to do once it is (or is not) durable."""

    write: Callable[[Any], None]
    """Puts the records into the shared write transaction it is given."""
    committed: Callable[[], None]
    """Runs after the shared commit returned."""
    alone: Callable[[], None]
    """Runs instead of ``committed`` when the shared commit failed."""


class GroupCommit:
    """Stages writes and commits them together; every method runs on one event loop."""

    def __init__(self, store: Store, window_s: float, max_writes: int) -> None:
        if window_s < 0 or max_writes < 1:
            raise ValueError("window_s must be >= 0 and max_writes >= 1")
        self._store = store
        self._window_s = window_s
        self._max = max_writes
        self._staged: list[Staged] = []
        self._timer: asyncio.TimerHandle | None = None
        self.commits = 0

    @property
    def pending(self) -> int:
        """How many writes wait for the next commit."""
        return len(self._staged)

    def stage(self, write: Staged) -> None:
        """Stage ``write``: committed when the window ends, now if full or without a loop."""
        self._staged.append(write)
        if len(self._staged) >= self._max:
            self.flush()
            return
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._timer = loop.call_later(self._window_s, self.flush)

    def flush(self) -> None:
        """Commit every staged write in one transaction, then run their follow-ups."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._staged = self._staged, []
        if not batch:
            return
        try:
            with self._store.write() as txn:
                for staged in batch:
                    staged.write(txn)
        except StoreError as err:
            log.warning(
                "group commit of %d writes failed; writing each alone",
                len(batch),
                extra={"error_id": "group-commit-failed", "error": str(err)},
            )
            self._each(batch, failed=True)
            return
        self.commits += 1
        self._each(batch, failed=False)

    def _each(self, batch: list[Staged], failed: bool) -> None:
        for staged in batch:
            try:
                staged.alone() if failed else staged.committed()
            except Exception:
                log.exception(
                    "follow-up of a committed write failed", extra={"error_id": "group-follow-up"}
                )
