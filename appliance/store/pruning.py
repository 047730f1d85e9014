"""Periodic pruning of the store: each feature registers what it forgets and when.

The store only shrinks when features delete what they no longer need (finished calls,
old CDR index entries, ...). The ``Pruner`` component runs every registered job at
start-up and every ``store.prune_interval_s``, whatever else is enabled, off the event
loop; a job that fails is logged with its traceback and tried again next time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

PruneJob = Callable[[float], int]


class Pruner:
    """A lifecycle component running named prune jobs (``job(now) -> entries removed``)."""

    name = "pruner"

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self._jobs: dict[str, PruneJob] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, name: str, job: PruneJob) -> None:
        """Register ``job``; it runs on every pass from the next one on."""
        self._jobs[name] = job

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="pruner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def run_once(self, now: float) -> dict[str, int]:
        """Run every job once; returns how many entries each removed (-1: it failed)."""
        removed = {}
        for name, job in self._jobs.items():
            try:
                removed[name] = job(now)
            except Exception:
                log.exception("pruning failed; tried again next pass", extra={"job": name})
                removed[name] = -1
        if any(removed.values()):
            log.info("store pruned", extra=removed)
        return removed

    async def _loop(self) -> None:
        while True:
            await asyncio.to_thread(self.run_once, time.time())
            await asyncio.sleep(self._every_s)
