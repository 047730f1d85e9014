"""Sign-in and the agent page: state, login/logout/pause/resume, the screen pop of the
current call with hang up and transfer.

``GET /console/agent/{n}`` is the page; with ``HX-Request`` it is the live part only,
which the page polls every ``POLL_S`` (htmx). Actions are plain form ``POST``s calling
the same functions as the API (``ContactService``, ``AgentCalls``) and answer the page
with what happened, or the refusal (its ``error_id`` and HTTP status). Handlers are
coroutines, so they run on the event loop that owns the ACD, as the API's do.
"""

import datetime
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from appliance.console.web import COOKIE, PREFIX, PageError, Pages, UserSession, check_csrf
from appliance.contact.acd import AcdError
from appliance.contact.agent_call_routes import STATUS as CALL_STATUS
from appliance.contact.api import AgentNumber
from appliance.contact.routes import STATUS as AGENT_STATUS
from appliance.contact.wiring import ContactCentre

log = logging.getLogger(__name__)

POLL_S = 1
PAUSE_REASONS = ("break", "lunch", "training", "meeting", "paperwork")
STATUS = {**AGENT_STATUS, **CALL_STATUS}


def build_agent_pages(pages: Pages, contact: ContactCentre, zone: datetime.tzinfo) -> APIRouter:
    """Sign-in, sign-out and the agent pages."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    viewer, operator = pages.needs("viewer"), pages.changes("operator")
    service = contact.service
    _sign_in_routes(router, pages)

    def show(
        request: Request,
        session: UserSession,
        number: str,
        status: int = 200,
        notice: str = "",
        refusal: str = "",
    ) -> Response:
        template = "agent_live.html" if request.headers.get("HX-Request") else "agent.html"
        return pages.render(
            request,
            session,
            template,
            status,
            poll_s=POLL_S,
            reasons=PAUSE_REASONS,
            notice=notice,
            refusal=refusal,
            **agent_view(contact, number, zone),
        )

    def act(
        request: Request, session: UserSession, number: str, action: Callable[[], object], done: str
    ) -> Response:
        try:
            action()
        except AcdError as err:
            log.info("agent page refused", extra={"agent": number, "error_id": err.error_id})
            return show(
                request,
                session,
                number,
                STATUS.get(err.error_id, 409),
                refusal=f"{err.error_id}: {err}",
            )
        return show(request, session, number, notice=done)

    @router.get("/agent/{number}")
    async def agent_page(
        request: Request, session: Annotated[UserSession, viewer], number: AgentNumber
    ) -> Response:
        return show(request, session, number)

    @router.post("/agent/{number}/login")
    async def login(
        request: Request, session: Annotated[UserSession, operator], number: AgentNumber
    ) -> Response:
        return act(request, session, number, lambda: service.login(number), "Logged in")

    @router.post("/agent/{number}/logout")
    async def logout(
        request: Request, session: Annotated[UserSession, operator], number: AgentNumber
    ) -> Response:
        return act(request, session, number, lambda: service.logout(number), "Logged out")

    @router.post("/agent/{number}/pause")
    async def pause(
        request: Request,
        session: Annotated[UserSession, operator],
        number: AgentNumber,
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        if reason not in PAUSE_REASONS:
            raise PageError(422, "unknown-pause-reason", f"pause reasons: {PAUSE_REASONS}")
        return act(
            request, session, number, lambda: service.pause(number, reason), f"Paused: {reason}"
        )

    @router.post("/agent/{number}/resume")
    async def resume(
        request: Request, session: Annotated[UserSession, operator], number: AgentNumber
    ) -> Response:
        return act(request, session, number, lambda: service.resume(number), "Available")

    @router.post("/agent/{number}/hangup")
    async def hangup(
        request: Request, session: Annotated[UserSession, operator], number: AgentNumber
    ) -> Response:
        return act(request, session, number, lambda: contact.calls.hangup(number), "Hung up")

    @router.post("/agent/{number}/transfer")
    async def transfer(
        request: Request,
        session: Annotated[UserSession, operator],
        number: AgentNumber,
        to: Annotated[str, Form()] = "",
    ) -> Response:
        return act(
            request,
            session,
            number,
            lambda: contact.calls.transfer(number, to),
            f"Transferring the caller to {to}",
        )

    return router


def agent_view(contact: ContactCentre, number: str, zone: datetime.tzinfo) -> dict[str, Any]:
    """What the agent page shows of ``number``: state with times, queues, screen pop."""
    agent = contact.service.acd.agents.get(number)
    if agent is None:
        raise PageError(404, "agent-not-found", f"{number} is no agent of any queue")
    now = time.time()
    queues = [name for name, q in contact.service.settings.queues.items() if number in q.numbers]
    return {
        "agent": agent,
        "since": _local(agent.since, zone),
        "for_s": int(max(0.0, now - agent.since)),
        "queues": queues,
        "pop": contact.pops.current(agent, now),
    }


def _local(epoch: float, zone: datetime.tzinfo) -> str:
    if epoch <= 0:
        return "-"
    return datetime.datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d %H:%M:%S")


def _sign_in_routes(router: APIRouter, pages: Pages) -> None:
    @router.get("")
    def home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/queues", status_code=303)

    @router.get("/sign-in")
    def sign_in_form(request: Request) -> Response:
        session = pages.session(request) or pages.sessions.start(None)
        response = pages.render(request, session, "sign_in.html", problem=None)
        pages.set_cookie(request, response, session)
        return response

    @router.post("/sign-in")
    async def sign_in(request: Request, token: Annotated[str, Form()] = "") -> Response:
        anonymous = pages.session(request)
        if anonymous is None:
            raise PageError(403, "csrf-token-invalid", "the form expired; reload the page")
        await check_csrf(request, anonymous)
        try:
            user = pages.access.grant(token.strip(), "viewer")
        except PageError as err:
            return pages.render(request, anonymous, "sign_in.html", 401, problem=err.message)
        pages.sessions.end(anonymous.session_id)
        session = pages.sessions.start(user)
        response = RedirectResponse(f"{PREFIX}/queues", status_code=303)
        pages.set_cookie(request, response, session)
        return response

    @router.post("/sign-out")
    async def sign_out(
        request: Request, session: Annotated[UserSession, pages.changes("viewer")]
    ) -> Response:
        pages.sessions.end(session.session_id)
        response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response
