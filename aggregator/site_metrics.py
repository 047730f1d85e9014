"""HQ's view of its sites for Prometheus, read from the ``sites`` table at scrape time.

``callmesh_site_online{site}`` (heard from within the online window the API uses),
``callmesh_site_last_seen_age_seconds{site}`` and ``callmesh_site_software_info{site,version}``.
A database that does not answer yields no site series (and is logged); the ``database``
health check reports it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric

from aggregator.sites.queries import ONLINE_WINDOW_MS
from aggregator.store.db import DatabaseError
from aggregator.store.schema import sites

log = logging.getLogger(__name__)


def site_rows(engine: sa.Engine) -> Sequence[Any]:
    """Every known site with when it was last heard from and its software."""
    query = sa.select(sites.c.site_id, sites.c.last_seen_ms, sites.c.software)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(sites.c.site_id)))


class SiteCollector:
    """Sites online, how long since each was heard from, and the software each runs."""

    def __init__(self, engine: Callable[[], sa.Engine]) -> None:
        self._engine = engine

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        online = GaugeMetricFamily(
            "callmesh_site_online", "1 while the site was heard from recently", labels=["site"]
        )
        age = GaugeMetricFamily(
            "callmesh_site_last_seen_age_seconds",
            "Seconds since the site was last heard from",
            labels=["site"],
        )
        software = GaugeMetricFamily(
            "callmesh_site_software_info",
            "The software version a site reports",
            labels=["site", "version"],
        )
        now_ms = int(time.time() * 1000)
        for row in self._rows():
            since_ms = max(0, now_ms - row.last_seen_ms)
            online.add_metric([row.site_id], int(since_ms < ONLINE_WINDOW_MS))
            age.add_metric([row.site_id], since_ms / 1000)
            software.add_metric([row.site_id, row.software], 1)
        yield from (online, age, software)

    def _rows(self) -> Sequence[Any]:
        try:
            return site_rows(self._engine())
        except (sa.exc.SQLAlchemyError, DatabaseError) as err:
            log.warning("cannot read sites for /metrics", extra={"error": repr(err)})
            return []
