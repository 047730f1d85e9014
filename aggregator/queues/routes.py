"""HQ API for contact-centre reports: ``/reports/queues`` and ``/reports/agents``.

Every role reads (site-viewers only their sites); ``format=csv`` answers the same rows
as CSV. Parameters that do not parse answer 422 with their ``error_id``
(aggregator/api/params.py).
"""

import time
from collections.abc import Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends

from aggregator.api.auth import Principal, hq_access
from aggregator.api.params import Format, Window, report_window, respond
from aggregator.queues.agents import agent_report
from aggregator.queues.report import Interval, QueueQuery, queue_report
from aggregator.settings import AggregatorSettings


def build_queues_router(settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> APIRouter:
    """The /api/v1/reports/queues and /api/v1/reports/agents routes."""
    router = APIRouter(prefix="/api/v1", tags=["reports"])
    who = Annotated[Principal, hq_access(settings.api.tokens).needs("viewer")]
    period = Annotated[Window, Depends(report_window(settings.reports.max_span_days))]

    @router.get(
        "/reports/queues",
        summary="Per queue and day/hour: offered, answered, abandoned, service level, ASA, "
        "AHT, longest wait",
    )
    def queues(
        principal: who,
        window: period,
        interval: Interval = "day",
        site: str | None = None,
        queue: str | None = None,
        format: Format = "json",
    ) -> Any:
        scope = principal.scope(site)
        query = QueueQuery(window.start_ms, window.end_ms, window.tz, interval, scope, queue)
        with engine().connect() as conn:
            rows = queue_report(conn, query)
        return respond(rows, format, "queues.csv")

    @router.get(
        "/reports/agents",
        summary="Per agent: logged-in time, paused time by reason, occupancy, calls, talk time",
    )
    def agents(
        principal: who, window: period, site: str | None = None, format: Format = "json"
    ) -> Any:
        now = int(time.time() * 1000)
        with engine().connect() as conn:
            rows = agent_report(conn, principal.scope(site), window.start_ms, window.end_ms, now)
        if format == "csv":
            rows = [row | {"paused_by_reason": _reasons(row["paused_by_reason"])} for row in rows]
        return respond(rows, format, "agents.csv")

    return router


def _reasons(paused: dict[str, float]) -> str:
    """Pause time by reason as one CSV cell: ``lunch=600.0; no-answer=15.0``."""
    return "; ".join(f"{reason}={seconds}" for reason, seconds in paused.items())
