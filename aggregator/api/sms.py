"""HQ API for SMS (/api/v1/sms): what the sites received and sent, newest first.

Every role reads (site-viewers only their sites). ``since`` is a date or ISO-8601 time
(UTC unless it has an offset); ``format=csv`` streams the same rows as CSV.
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query

from aggregator import reports
from aggregator.api.auth import Principal, hq_access
from aggregator.api.csv_export import csv_response
from aggregator.api.routes import Format, _time
from aggregator.settings import AggregatorSettings
from aggregator.store.schema import sms_messages


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
        table = sms_messages.c
        query = sa.select(sms_messages).order_by(table.at_ms.desc(), table.sms_id.desc())
        scope = principal.scope(site)
        if scope is not None:
            query = query.where(table.site_id.in_(sorted(scope)))
        if direction is not None:
            query = query.where(table.direction == direction)
        if iccid is not None:
            query = query.where(table.iccid == iccid)
        start = _time(since, reports.zone("UTC"))
        if start is not None:
            query = query.where(table.at_ms >= start)
        with engine().connect() as conn:
            rows = [_sms(r) for r in conn.execute(query.limit(limit))]
        return csv_response("sms.csv", iter(rows)) if format == "csv" else {"sms": rows}

    return router


def _sms(row: Any) -> dict[str, Any]:
    found = dict(row._mapping)
    found["id"] = found.pop("sms_id")
    found["at"] = reports.render_time(found.pop("at_ms"), reports.zone("UTC"))
    found["received"] = reports.render_time(found.pop("received_ms"), reports.zone("UTC"))
    return found
