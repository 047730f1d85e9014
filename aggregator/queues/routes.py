"""HQ API for contact-centre reports: ``/reports/queues``, ``/reports/agents`` and the
emergency centre's ``/reports/queues/answer-times`` and ``/reports/queues/lost``.

Every role reads (site-viewers only their sites); ``format=csv`` answers the same rows
as CSV. Parameters that do not parse answer 422 with their ``error_id``
(aggregator/api/params.py).
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query

from aggregator.api.auth import Principal, hq_access
from aggregator.api.csv_export import csv_response
from aggregator.api.params import Format, Window, guard, report_window, respond, span
from aggregator.queues.agents import agent_report
from aggregator.queues.answer_times import answer_time_report, buckets
from aggregator.queues.lost import LostQuery, lost_calls
from aggregator.queues.report import Interval, QueueQuery, queue_report
from aggregator.queues.zones import zone_groups
from aggregator.settings import AggregatorSettings

CSV_PAGE = 1000
Report = Callable[[sa.Connection, QueueQuery], list[dict[str, Any]]]


@dataclass(frozen=True)
class Selection:
    """What a queue report was asked for, before it is split by time zone."""

    scope: frozenset[str] | None
    start: str
    end: str
    tz: str
    interval: Interval
    queue: str | None


def build_queues_router(settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> APIRouter:
    """The /api/v1/reports/queues and /api/v1/reports/agents routes."""
    router = APIRouter(prefix="/api/v1", tags=["reports"])
    who = Annotated[Principal, hq_access(settings.api.tokens).needs("viewer")]
    period = Annotated[Window, Depends(report_window(settings.reports.max_span_days))]

    def selected(
        principal: who,
        start: Annotated[str, Query(alias="from", description="date or ISO time")],
        end: Annotated[str, Query(alias="to", description="exclusive")],
        interval: Interval = "day",
        site: str | None = None,
        queue: str | None = None,
        tz: Annotated[str, Query(description="IANA zone, or site: each site's own")] = "UTC",
    ) -> Selection:
        return Selection(principal.scope(site), start, end, tz, interval, queue)

    chosen = Annotated[Selection, Depends(selected)]

    def rows_of(choice: Selection, report: Report) -> list[dict[str, Any]]:
        """``report`` run once per time zone (one, unless ``tz=site``: one per site zone)."""
        rows = []
        with engine().connect() as conn:
            for group in zone_groups(conn, choice.tz, choice.scope):
                first, last = span(
                    choice.start, choice.end, group.tz, settings.reports.max_span_days
                )
                query = QueueQuery(
                    first, last, group.tz, choice.interval, group.sites, choice.queue,
                    group.not_sites,
                )  # fmt: skip
                rows += report(conn, query)
        rows.sort(key=_order)
        return rows

    @router.get(
        "/reports/queues",
        summary="Per queue and day/hour: offered, answered, abandoned, service level, ASA, "
        "AHT, longest wait",
    )
    def queues(choice: chosen, format: Format = "json") -> Any:
        return respond(rows_of(choice, queue_report), format, "queues.csv")

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

    @router.get(
        "/reports/queues/answer-times",
        summary="Per queue and day/hour: answered calls by wait (0-5, 5-10, ... 120+ s)",
    )
    def answer_times(choice: chosen, format: Format = "json") -> Any:
        rows = rows_of(choice, answer_time_report)
        if format == "csv":
            return respond(rows, format, "answer-times.csv")
        return {"buckets": buckets(), "rows": rows}

    @router.get(
        "/reports/queues/lost",
        summary="Queued calls lost (abandoned, timeout, interrupted) and whether the caller "
        "was reached afterwards; oldest first, cursor paginated",
    )
    def lost(
        principal: who,
        window: period,
        site: str | None = None,
        queue: str | None = None,
        window_min: Annotated[int, Query(ge=1, le=10_080, description="minutes")] = 60,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
        format: Format = "json",
    ) -> Any:
        reached = window_min * 60_000
        scope = principal.scope(site)
        query = LostQuery(window.start_ms, window.end_ms, window.tz, reached, scope, queue)
        if format == "csv":
            return csv_response("lost-calls.csv", _all_lost(engine, query))
        with engine().connect() as conn:
            rows, next_cursor = guard(lost_calls, conn, query, limit, cursor)
        return {"calls": rows, "next_cursor": next_cursor}

    return router


def _all_lost(engine: Callable[[], sa.Engine], query: LostQuery) -> Iterator[dict[str, Any]]:
    """Every lost call of the query, a page (one short transaction) at a time."""
    cursor: str | None = None
    while True:
        with engine().connect() as conn:
            page, cursor = lost_calls(conn, query, CSV_PAGE, cursor)
        yield from page
        if cursor is None:
            return


def _order(line: dict[str, Any]) -> tuple[str, str, str]:
    return line["site_id"], line["queue"], line["period"]


def _reasons(paused: dict[str, float]) -> str:
    """Pause time by reason as one CSV cell: ``lunch=600.0; no-answer=15.0``."""
    return "; ".join(f"{reason}={seconds}" for reason, seconds in paused.items())
