"""One site's page: its status and the newest doctor report it sent, check by check."""

import time
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from aggregator.console.sessions import Session
from aggregator.console.web import PREFIX, Console, scope
from aggregator.doctor.store import latest_report
from aggregator.sites.queries import site_row
from drivers.web.pages import PageError


def build_site_pages(console: Console) -> APIRouter:
    """``GET /console/sites/{site_id}``."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    viewer = console.needs("viewer")

    @router.get("/sites/{site_id}")
    def site_page(site_id: str, request: Request, session: Annotated[Session, viewer]) -> Response:
        if session.principal is None:
            raise PageError(401, "not-signed-in", "sign in first")
        scope(session.principal, site_id)
        with console.engine().connect() as conn:
            site = site_row(conn, site_id)
            doctor = latest_report(conn, site_id)
        if site is None and doctor is None:
            raise PageError(404, "unknown-site", f"no site {site_id!r} has connected yet")
        now_ms = int(time.time() * 1000)
        return console.render(
            request,
            session,
            "site.html",
            page="sites",
            site_id=site_id,
            site=site,
            doctor=doctor,
            doctor_age=age(doctor.age_s(now_ms)) if doctor is not None else "",
        )

    return router


def age(seconds: float) -> str:
    """A report's age in words a person reads at a glance: ``42 s``, ``5 min``, ``3 h``, ``2 d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"
