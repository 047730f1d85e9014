"""The wallboard: every contact-centre queue of the viewer's sites, refreshed by htmx.

Sites with a contact centre report their queues in their status and send a new status
within about a second of a value changing (``appliance/contact/stats.py``); HQ keeps the
last one in the ``sites`` table and validates it when read
(``aggregator/sites/live_queues.py``). The page polls its own fragment every second, so a
caller entering a queue shows within about two seconds.
"""

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from aggregator.console.sessions import Session
from aggregator.console.web import PREFIX, Console
from aggregator.sites.live_queues import live_queues
from aggregator.sites.queries import site_rows
from drivers.web.pages import PageError

POLL_S = 1
AGENT_LABELS = (
    ("available", "Available"),
    ("ringing", "Ringing"),
    ("on-call", "Talking"),
    ("wrap-up", "Wrap-up"),
    ("paused", "Paused"),
    ("logged-out", "Logged out"),
)


def build_wallboard_pages(console: Console) -> APIRouter:
    """``GET /console/wallboard``: the page, or for htmx its live fragment."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    viewer = console.needs("viewer")

    @router.get("/wallboard")
    def wallboard_page(request: Request, session: Annotated[Session, viewer]) -> Response:
        if session.principal is None:
            raise PageError(401, "not-signed-in", "sign in first")
        with console.engine().connect() as conn:
            rows = site_rows(conn, session.principal.sites)
        queues = [q.view() for q in live_queues(rows)]
        template = (
            "wallboard_queues.html" if request.headers.get("HX-Request") else "wallboard.html"
        )
        return console.render(
            request,
            session,
            template,
            page="wallboard",
            queues=queues,
            waiting=sum(q["waiting"] for q in queues),
            agent_labels=AGENT_LABELS,
            poll_s=POLL_S,
        )

    return router
