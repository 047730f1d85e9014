"""What HQ refuses from a site: counted, logged without flooding, and paid for by the site.

A site that sends garbage at full speed must not turn HQ's log into the bottleneck, so
each (site, stream, error id) is logged at most once per ``log_interval_s``, with the
number of refusals since the last line; the counter counts every one.

Each site has a budget of refusals (a token bucket of ``burst`` refusals refilled at
``rate`` a second). A site past it is ``throttled``: its messages are refused before
they are even decoded, which costs HQ next to nothing, until the bucket refills. A
working site with the odd invalid record never comes near it; a site that sends nothing
but garbage stays throttled for as long as it keeps sending.

Refusals come from the event loop and the ingest worker thread, hence the lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from prometheus_client import Counter

from drivers.sync.records import RecordError

log = logging.getLogger(__name__)

# HQ's own failures: answered "retry later", counted, but never charged to the site.
HQ_FAULTS = frozenset({"db-unavailable", "storage-unavailable", "ingest-failed"})

_T = TypeVar("_T")


class Refusals:
    """Counts, logs and budgets refused records and messages per site."""

    def __init__(
        self,
        counter: Counter,
        rate: float,
        burst: float,
        log_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counter = counter
        self._rate, self._burst = rate, burst
        self._interval = log_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._budget: dict[str, tuple[float, float]] = {}

    def refused(
        self, site_id: str, stream: str, error_id: str, detail: str, count: int = 1
    ) -> None:
        """Count ``count`` refusals of one kind; log the first and then once an interval."""
        if count <= 0:
            return
        self.counter.labels(site=site_id, stream=stream, error_id=error_id).inc(count)
        with self._lock:
            now = self._clock()
            if error_id not in HQ_FAULTS:
                tokens, _ = self._tokens(site_id, now)
                self._budget[site_id] = (tokens - count, now)
            unlogged = self._unlogged((site_id, stream, error_id), now, count)
        if unlogged is not None:
            log.warning(
                "refused from a site",
                extra={
                    "site": site_id,
                    "stream": stream,
                    "error_id": error_id,
                    "detail": detail[:256],
                    "count": unlogged,
                },
            )

    def valid(
        self, site_id: str, stream: str, parse: Callable[[Any], _T], values: Iterable[Any]
    ) -> list[_T]:
        """The records among ``values`` that parse; each other one is refused alone."""
        valid = []
        for value in values:
            try:
                valid.append(parse(value))
            except RecordError as err:
                self.refused(site_id, stream, err.error_id, err.message)
        return valid

    def throttled(self, site_id: str) -> bool:
        """True while ``site_id`` has spent its refusal budget."""
        with self._lock:
            tokens, _ = self._tokens(site_id, self._clock())
        return tokens < 0

    def _tokens(self, site_id: str, now: float) -> tuple[float, float]:
        tokens, then = self._budget.get(site_id, (self._burst, now))
        return min(self._burst, tokens + (now - then) * self._rate), now

    def _unlogged(self, key: tuple[str, str, str], now: float, count: int) -> int | None:
        """Refusals to report in a log line now, or None when the last line is too recent."""
        logged_at, unlogged = self._last.get(key, (now - self._interval, 0))
        if now - logged_at < self._interval:
            self._last[key] = (logged_at, unlogged + count)
            return None
        self._last[key] = (now, 0)
        return unlogged + count
