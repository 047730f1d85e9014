"""HQ API for CDRs and call reports: search (cursor paginated), summary, totals, CSV.

The SQL lives in ``aggregator/reports.py``; recording links come from
``aggregator/recording_store.py``.
"""

from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query

from aggregator import recording_store, reports
from aggregator.api.auth import Principal, hq_access
from aggregator.api.csv_export import csv_response
from aggregator.api.params import (
    Format,
    Window,
    guard,
    report_window,
    respond_plain,
    time_ms,
    zone,
)
from aggregator.settings import AggregatorSettings

CSV_PAGE = 1000


def build_cdrs_router(settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> APIRouter:
    """/cdrs and /reports/summary, /reports/by-extension, /reports/by-trunk."""
    router = APIRouter(prefix="/api/v1")
    who = Annotated[Principal, hq_access(settings.api.tokens).needs("viewer")]
    period = Annotated[Window, Depends(report_window(settings.reports.max_span_days))]

    @router.get("/cdrs", tags=["cdrs"], summary="Search CDRs, newest first, cursor paginated")
    def search_cdrs(
        principal: who,
        site: str | None = None,
        start: Annotated[str | None, Query(alias="from", description="date or ISO time")] = None,
        end: Annotated[str | None, Query(alias="to", description="exclusive")] = None,
        number: str | None = None,
        extension: str | None = None,
        disposition: str | None = None,
        trunk: str | None = None,
        tz: str = "UTC",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
        format: Format = "json",
    ) -> Any:
        local = zone(tz)
        flt = reports.CdrFilter(
            sites=principal.scope(site),
            start_ms=time_ms(start, local),
            end_ms=time_ms(end, local),
            number=number,
            extension=extension,
            disposition=disposition,
            trunk=trunk,
        )
        if format == "csv":
            return csv_response("cdrs.csv", _all_pages(engine, flt, local))
        with engine().connect() as conn:
            page, next_cursor = guard(reports.search_cdrs, conn, flt, local, limit, cursor)
            recording_store.annotate(conn, page)
        return {"cdrs": page, "next_cursor": next_cursor}

    @router.get(
        "/reports/summary",
        tags=["reports"],
        summary="Calls, answered, ASR, ACD, minutes, busiest hour per site and day/hour",
    )
    def summary(
        principal: who,
        window: period,
        site: str | None = None,
        group: Literal["day", "hour"] = "day",
        format: Format = "json",
    ) -> Any:
        scope = principal.scope(site)
        with engine().connect() as conn:
            rows = reports.summary(conn, scope, window.start_ms, window.end_ms, window.tz, group)
        return respond_plain(rows, format, "summary.csv")

    for dim in ("extension", "trunk"):
        router.add_api_route(
            f"/reports/by-{dim}",
            _by_key(engine, who, period, dim),
            methods=["GET"],
            tags=["reports"],
            summary=f"Totals per {dim}",
        )
    return router


def _by_key(engine: Callable[[], sa.Engine], who: Any, period: Any, dim: str) -> Callable[..., Any]:
    def handler(
        principal: who, window: period, site: str | None = None, format: Format = "json"
    ) -> Any:
        scope = principal.scope(site)
        with engine().connect() as conn:
            rows = reports.by_key(conn, dim, scope, window.start_ms, window.end_ms)
        return respond_plain(rows, format, f"by-{dim}.csv")

    return handler


def _all_pages(
    engine: Callable[[], sa.Engine], flt: reports.CdrFilter, tz: ZoneInfo
) -> Iterator[dict[str, Any]]:
    """Every matching CDR, read a page (one short transaction) at a time."""
    cursor: str | None = None
    while True:
        with engine().connect() as conn:
            page, cursor = reports.search_cdrs(conn, flt, tz, CSV_PAGE, cursor)
        yield from page
        if cursor is None:
            return
