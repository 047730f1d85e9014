"""HQ API for hotels: postings, wake-up outcomes and the chain report, per property.

Every role reads (site-viewers only their sites). ``from``/``to`` are dates or ISO-8601
times in ``tz`` (``to`` exclusive); ``format=csv`` streams the same rows as CSV. Postings
are found by the time the PMS answered them, wake-ups by the time they ended.
"""

from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query

from aggregator.api.auth import Principal, hq_access
from aggregator.api.params import Format, Window, report_window, respond, time_ms, zone
from aggregator.hotel.queries import HotelFilter, hotel_report, search_postings, search_wake_ups
from aggregator.settings import AggregatorSettings

Since = Annotated[str | None, Query(alias="from", description="date or ISO time")]
Until = Annotated[str | None, Query(alias="to", description="exclusive")]
Room = Annotated[str | None, Query(max_length=8, description="room number, as the PMS has it")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Search = Callable[[sa.Connection, HotelFilter, ZoneInfo, int], list[dict[str, Any]]]


def build_hotel_router(settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> APIRouter:
    """/hotel/postings, /hotel/wakeups and /reports/hotel."""
    router = APIRouter(prefix="/api/v1")
    who = Annotated[Principal, hq_access(settings.api.tokens).needs("viewer")]
    period = Annotated[Window, Depends(report_window(settings.reports.max_span_days))]
    listings = (
        ("postings", "Postings the PMS answered, newest first", search_postings, "postings"),
        ("wakeups", "Wake-up outcomes, newest first", search_wake_ups, "wake_ups"),
    )
    for name, summary, search, key in listings:
        router.add_api_route(
            f"/hotel/{name}",
            _listing(engine, who, search, f"hotel-{name}.csv", key),
            methods=["GET"],
            tags=["hotel"],
            summary=summary,
        )

    @router.get(
        "/reports/hotel",
        tags=["reports"],
        summary="Per property and day: postings booked, refused and their sum; wake-ups by outcome",
    )
    def report(
        principal: who, window: period, site: str | None = None, format: Format = "json"
    ) -> Any:
        scope = principal.scope(site)
        with engine().connect() as conn:
            rows = hotel_report(conn, scope, window.start_ms, window.end_ms, window.tz)
        return respond(rows, format, "hotel-report.csv")

    return router


def _listing(
    engine: Callable[[], sa.Engine], who: Any, search: Search, filename: str, key: str
) -> Callable[..., Any]:
    def handler(
        principal: who,
        site: str | None = None,
        start: Since = None,
        end: Until = None,
        room: Room = None,
        tz: str = "UTC",
        limit: Limit = 100,
        format: Format = "json",
    ) -> Any:
        local = zone(tz)
        flt = HotelFilter(principal.scope(site), time_ms(start, local), time_ms(end, local), room)
        with engine().connect() as conn:
            rows = search(conn, flt, local, limit)
        return respond(rows, format, filename, key=key)

    return handler
