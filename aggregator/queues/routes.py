"""HQ API for contact-centre reports: ``/reports/queues`` and ``/reports/agents``.

Every role reads (site-viewers only their sites); ``format=csv`` answers the same rows
as CSV. Parameters that do not parse answer 422 with their ``error_id``
(aggregator/api/params.py).
"""

from collections.abc import Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query

from aggregator.api.auth import Principal, hq_access
from aggregator.api.params import Format, respond, span, zone
from aggregator.queues.report import Interval, QueueQuery, queue_report
from aggregator.settings import AggregatorSettings


def build_queues_router(settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> APIRouter:
    """The /api/v1/reports/queues and /api/v1/reports/agents routes."""
    router = APIRouter(prefix="/api/v1", tags=["reports"])
    who = Annotated[Principal, hq_access(settings.api.tokens).needs("viewer")]

    @router.get(
        "/reports/queues",
        summary="Per queue and day/hour: offered, answered, abandoned, service level, ASA, "
        "AHT, longest wait",
    )
    def queues(
        principal: who,
        start: Annotated[str, Query(alias="from", description="date or ISO time")],
        end: Annotated[str, Query(alias="to", description="exclusive")],
        interval: Interval = "day",
        site: str | None = None,
        queue: str | None = None,
        tz: str = "UTC",
        format: Format = "json",
    ) -> Any:
        local = zone(tz)
        first, last = span(start, end, local, settings.reports.max_span_days)
        query = QueueQuery(first, last, local, interval, principal.scope(site), queue)
        with engine().connect() as conn:
            rows = queue_report(conn, query)
        return respond(rows, format, "queues.csv")

    return router
