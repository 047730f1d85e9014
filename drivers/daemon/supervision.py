"""Keep a long-running task alive: an unexpected exception restarts it after a backoff.

Theory of operation: ``Supervisor.run(target)`` awaits ``target()`` forever. When it
raises (anything but cancellation), the traceback is logged, the restart is counted
and remembered (``last_error``), and ``target`` starts again after a delay that doubles
with each failure in a row, from ``min_s`` up to ``max_s``, times a random factor in
[0.5, 1.5) so that many boxes failing together do not retry in step. A target that ran
for ``stable_s`` before failing starts the delays from ``min_s`` again. ``check`` is a
health check: failing while the last crash is less than ``recent_s`` old.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Supervisor:
    """Runs one coroutine function, restarting it with jittered backoff when it fails."""

    def __init__(
        self,
        name: str,
        min_s: float,
        max_s: float,
        on_restart: Callable[[], None] | None = None,
        stable_s: float = 60.0,
    ) -> None:
        self.name = name
        self._min_s, self._max_s, self._stable_s = min_s, max_s, stable_s
        self._on_restart = on_restart
        self.restarts = 0
        self.last_error = ""
        self.crashed_at: float | None = None

    async def run(self, target: Callable[[], Awaitable[None]]) -> None:
        """Await ``target()`` again and again until cancelled."""
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await target()
                error = "returned"
            except Exception as err:
                error = f"{type(err).__name__}: {err}"
                log.exception("%s failed; restarting it", self.name, extra={"error": error})
            failures = 1 if time.monotonic() - started > self._stable_s else failures + 1
            self._crashed(error)
            await asyncio.sleep(self.backoff(failures))

    def _crashed(self, error: str) -> None:
        self.restarts += 1
        self.last_error = error
        self.crashed_at = time.monotonic()
        if self._on_restart is not None:
            self._on_restart()

    def backoff(self, failures: int) -> float:
        """The delay before restart number ``failures`` in a row (jittered)."""
        base = min(self._max_s, self._min_s * 2 ** min(failures - 1, 16))
        return float(base * random.uniform(0.5, 1.5))

    def check(self, recent_s: float) -> tuple[bool, str]:
        """Health: failing with the last error while a crash is less than ``recent_s`` old."""
        if self.crashed_at is None:
            return True, "running"
        age = time.monotonic() - self.crashed_at
        detail = f"restarted {self.restarts} times, last {age:.0f}s ago after {self.last_error}"
        return age >= recent_s, detail
