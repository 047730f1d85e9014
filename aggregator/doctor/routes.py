"""``GET /api/v1/sites/{site_id}/doctor``: the site's newest doctor report."""

from collections.abc import Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter

from aggregator.api.auth import Principal, hq_access
from aggregator.api.errors import ApiError
from aggregator.doctor.store import latest_report
from aggregator.settings import AggregatorSettings


def build_doctor_router(settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> APIRouter:
    """The doctor report route; the same roles and site scope as ``/sites``."""
    router = APIRouter(prefix="/api/v1")
    who = Annotated[Principal, hq_access(settings.api.tokens).needs("viewer")]

    @router.get(
        "/sites/{site_id}/doctor",
        tags=["sites"],
        summary="The newest doctor report the site sent: each check, its status and next step",
    )
    def get_doctor(site_id: str, principal: who) -> dict[str, Any]:
        principal.scope(site_id)
        with engine().connect() as conn:
            found = latest_report(conn, site_id)
        if found is None:
            raise ApiError(404, "no-doctor-report", f"site {site_id!r} has sent no doctor report")
        return found.view()

    return router
