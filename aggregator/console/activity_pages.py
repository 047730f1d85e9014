"""The live activity page: calls in progress per site, refreshed by htmx every 2 seconds.

Sites with a PBX report their calls in progress in their status, and send a new status
within about a second of the count changing (``appliance/sync/client.py``); HQ keeps the
last one in the ``sites`` table. The page polls its own fragment, so it follows calls
with a delay of about three seconds and costs one small query per viewer and poll.
"""

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from aggregator.console.sessions import Session
from aggregator.console.web import PREFIX, Console
from aggregator.sites.queries import site_rows
from drivers.web.pages import PageError

POLL_S = 2


def build_activity_pages(console: Console) -> APIRouter:
    """``GET /console/activity``: the page, or for htmx its live fragment."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    viewer = console.needs("viewer")

    @router.get("/activity")
    def activity_page(request: Request, session: Annotated[Session, viewer]) -> Response:
        if session.principal is None:
            raise PageError(401, "not-signed-in", "sign in first")
        with console.engine().connect() as conn:
            rows = site_rows(conn, session.principal.sites)
        live = [r for r in rows if r.online and r.calls_active is not None]
        template = "activity_rows.html" if request.headers.get("HX-Request") else "activity.html"
        return console.render(
            request,
            session,
            template,
            page="activity",
            sites=rows,
            total=sum(r.calls_active or 0 for r in live),
            poll_s=POLL_S,
        )

    return router
