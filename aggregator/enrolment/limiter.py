"""Per client address rate limit of the unauthenticated enrol endpoint (a token bucket)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_ADDRESSES = 10_000


class AddressLimiter:
    """``per_minute`` requests an address may make, in bursts of as many; bounded memory."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = per_minute / 60.0
        self._burst = per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, address: str) -> bool:
        """Spend one request of ``address``; False when it has none left."""
        now = self._clock()
        with self._lock:
            if len(self._buckets) >= MAX_ADDRESSES and address not in self._buckets:
                self._forget_full(now)
                if len(self._buckets) >= MAX_ADDRESSES:
                    return False
            tokens, then = self._buckets.get(address, (self._burst, now))
            tokens = min(self._burst, tokens + (now - then) * self._rate)
            if tokens < 1:
                self._buckets[address] = (tokens, now)
                return False
            self._buckets[address] = (tokens - 1, now)
            return True

    def _forget_full(self, now: float) -> None:
        """Drop addresses whose bucket has refilled; they are as good as new."""
        refill_s = self._burst / self._rate
        self._buckets = {a: b for a, b in self._buckets.items() if now - b[1] < refill_s}
