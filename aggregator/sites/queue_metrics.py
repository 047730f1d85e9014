"""The sites' live contact-centre queues for Prometheus, read from the ``sites`` table at
scrape time.

The values are those of the wallboard (``live_queues``): only online sites, only queues
that pass the checks, the longest wait worked out now. Per site and queue:

- ``callmesh_queue_callers_waiting``, ``callmesh_queue_longest_wait_seconds`` (0 when
  nobody waits), ``callmesh_queue_agents{state}``;
- ``callmesh_queue_calls_today{outcome}`` (``answered``, ``abandoned``; offered is their
  sum). A gauge: the site's day starts again at its midnight, so the value falls then,
  which a counter must not do;
- ``callmesh_queue_service_level_ratio`` (answered within the threshold, of answered and
  abandoned; absent before the day's first outcome) and
  ``callmesh_queue_service_level_threshold_seconds``.

A database that does not answer yields no queue series (and is logged); the ``database``
health check reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric

from aggregator.sites.live_queues import LiveQueue, live_queues
from aggregator.sites.queries import site_rows
from aggregator.store.db import DatabaseError

log = logging.getLogger(__name__)

QUEUE_LABELS = ["site", "queue"]


class QueueFamilies:
    """The queue families of one scrape, filled queue by queue."""

    def __init__(self) -> None:
        self.waiting = _gauge("callers_waiting", "Callers waiting in the queue")
        self.longest = _gauge(
            "longest_wait_seconds", "Seconds the longest-waiting caller has waited (0: none)"
        )
        self.agents = _gauge("agents", "The queue's agents by state", ["state"])
        self.calls = _gauge(
            "calls_today",
            "Queue calls today (site's day) by outcome: answered or abandoned",
            ["outcome"],
        )
        self.level = _gauge(
            "service_level_ratio",
            "Calls answered within the threshold today, of those answered or abandoned",
        )
        self.threshold = _gauge(
            "service_level_threshold_seconds", "The wait the queue's service level counts within"
        )

    def add(self, live: LiveQueue) -> None:
        """The series of one queue."""
        q, labels = live.queue, [live.site_id, live.queue.name]
        self.waiting.add_metric(labels, q.waiting)
        self.longest.add_metric(labels, live.longest_wait_s or 0.0)
        for state, count in q.agents.model_dump(by_alias=True).items():
            self.agents.add_metric([*labels, state], count)
        self.calls.add_metric([*labels, "answered"], q.answered)
        self.calls.add_metric([*labels, "abandoned"], q.abandoned)
        if q.service_level_percent is not None:
            self.level.add_metric(labels, q.service_level_percent / 100)
        self.threshold.add_metric(labels, q.service_level_s)

    def all(self) -> list[GaugeMetricFamily]:
        """Every family, in the order they are exported."""
        return [self.waiting, self.longest, self.agents, self.calls, self.level, self.threshold]


class QueueCollector:
    """Every online site's queues: callers waiting, longest wait, agents, calls, service level."""

    def __init__(self, engine: Callable[[], sa.Engine]) -> None:
        self._engine = engine

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        families = QueueFamilies()
        for live in self._queues():
            families.add(live)
        yield from families.all()

    def _queues(self) -> list[LiveQueue]:
        try:
            with self._engine().connect() as conn:
                return live_queues(site_rows(conn, None))
        except (sa.exc.SQLAlchemyError, DatabaseError) as err:
            log.warning("cannot read queues for /metrics", extra={"error": repr(err)})
            return []


def _gauge(name: str, documentation: str, extra: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"callmesh_queue_{name}", documentation, labels=[*QUEUE_LABELS, *(extra or [])]
    )
