"""HQ API for hotels: postings, wake-up outcomes and the chain report, per property.

Every role reads (site-viewers only their sites). ``from``/``to`` are dates or ISO-8601
times in ``tz`` (``to`` exclusive); ``format=csv`` streams the same rows as CSV. Postings
are found by the time the PMS answered them, wake-ups by the time they ended.
"""

from collections.abc import Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query

from aggregator.api.auth import Principal, hq_access
from aggregator.api.params import Format, respond, span, time_ms, zone
from aggregator.hotel.queries import HotelFilter, hotel_report, search_postings, search_wake_ups
from aggregator.settings import AggregatorSettings

Since = Annotated[str | None, Query(alias="from", description="date or ISO time")]
Until = Annotated[str | None, Query(alias="to", description="exclusive")]
Room = Annotated[str | None, Query(max_length=8, description="room number, as the PMS has it")]
Limit = Annotated[int, Query(ge=1, le=1000)]


def build_hotel_router(settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> APIRouter:
    """/hotel/postings, /hotel/wakeups and /reports/hotel."""
    router = APIRouter(prefix="/api/v1")
    who = Annotated[Principal, hq_access(settings.api.tokens).needs("viewer")]

    @router.get(
        "/hotel/postings", tags=["hotel"], summary="Postings the PMS answered, newest first"
    )
    def postings(
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
            rows = search_postings(conn, flt, local, limit)
        return respond(rows, format, "hotel-postings.csv", key="postings")

    @router.get("/hotel/wakeups", tags=["hotel"], summary="Wake-up outcomes, newest first")
    def wake_ups(
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
            rows = search_wake_ups(conn, flt, local, limit)
        return respond(rows, format, "hotel-wakeups.csv", key="wake_ups")

    @router.get(
        "/reports/hotel",
        tags=["reports"],
        summary="Per property and day: postings booked, refused and their sum; wake-ups by outcome",
    )
    def report(
        principal: who,
        start: Annotated[str, Query(alias="from")],
        end: Annotated[str, Query(alias="to")],
        site: str | None = None,
        tz: str = "UTC",
        format: Format = "json",
    ) -> Any:
        local = zone(tz)
        first, last = span(start, end, local, settings.reports.max_span_days)
        with engine().connect() as conn:
            rows = hotel_report(conn, principal.scope(site), first, last, local)
        return respond(rows, format, "hotel-report.csv")

    return router
