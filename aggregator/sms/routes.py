"""HQ API for SMS (/api/v1/sms): what the sites received and sent, newest first.

Every role reads (site-viewers only their sites). ``since`` is a date or ISO-8601 time
(UTC unless it has an offset); ``format=csv`` streams the same rows as CSV.
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query

from aggregator.api.auth import Principal, hq_access
from aggregator.api.params import Format, respond, time_ms
from aggregator.settings import AggregatorSettings
from aggregator.sms.queries import UTC, SmsFilter, search_sms


def build_sms_router(settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> APIRouter:
    """The /api/v1/sms route."""
    router = APIRouter(prefix="/api/v1", tags=["sms"])
    who = Annotated[Principal, hq_access(settings.api.tokens).needs("viewer")]

    @router.get("/sms", summary="SMS received and sent by the sites, newest first")
    def search(
        principal: who,
        site: str | None = None,
        direction: Literal["in", "out"] | None = None,
        since: Annotated[str | None, Query(description="date or ISO time")] = None,
        iccid: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        format: Format = "json",
    ) -> Any:
        flt = SmsFilter(principal.scope(site), direction, iccid, time_ms(since, UTC))
        with engine().connect() as conn:
            rows = search_sms(conn, flt, limit)
        return respond(rows, format, "sms.csv", key="sms")

    return router
