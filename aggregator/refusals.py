"""What HQ refuses from a site: counted per site, stream and reason, logged without flooding.

A site that sends garbage at full speed must not turn HQ's log into the bottleneck, so
each (site, stream, error id) is logged at most once per ``log_interval_s``, with the
number of refusals since the last line; the counter counts every one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import Counter

log = logging.getLogger(__name__)


class Refusals:
    """Counts and logs refused records and messages."""

    def __init__(
        self,
        counter: Counter,
        log_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counter = counter
        self._interval = log_interval_s
        self._clock = clock
        self._last: dict[tuple[str, str, str], tuple[float, int]] = {}

    def refused(
        self, site_id: str, stream: str, error_id: str, detail: str, count: int = 1
    ) -> None:
        """Count ``count`` refusals of one kind; log the first and then once an interval."""
        if count <= 0:
            return
        self.counter.labels(site=site_id, stream=stream, error_id=error_id).inc(count)
        key = (site_id, stream, error_id)
        now = self._clock()
        logged_at, unlogged = self._last.get(key, (-self._interval, 0))
        if now - logged_at < self._interval:
            self._last[key] = (logged_at, unlogged + count)
            return
        self._last[key] = (now, 0)
        log.warning(
            "refused from a site",
            extra={
                "site": site_id,
                "stream": stream,
                "error_id": error_id,
                "detail": detail[:256],
                "count": count + unlogged,
            },
        )
