"""The agent page: state, login/logout/pause/resume, the screen pop of the
current call with answer on desk, hang up, transfer and three-way.

``GET /console/agent/{n}`` is the page; with ``HX-Request`` it is the live part only,
which the page polls every ``POLL_S`` (htmx). Actions are plain form ``POST``s calling
the same functions as the API (``ContactService``, ``AgentCalls``) and answer the page
with what happened, or the refusal (its ``error_id`` and HTTP status). Handlers are
coroutines, so they run on the event loop that owns the ACD, as the API's do.
"""

import datetime
import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from appliance.console.web import PREFIX, SHOWN, Outcome, Pages, Refusals, UserSession
from appliance.contact.acd import AcdError
from appliance.contact.agent_call_routes import STATUS as CALL_STATUS
from appliance.contact.api import AgentNumber
from appliance.contact.routes import STATUS as AGENT_STATUS
from appliance.contact.supervision_routes import STATUS as SUPERVISION_STATUS
from appliance.contact.supervisors import SupervisionError
from appliance.contact.wiring import ContactCentre
from drivers.web.pages import PageError

POLL_S = 1
PAUSE_REASONS = ("break", "lunch", "training", "meeting", "paperwork")
FormText = Annotated[str, Form()]
REFUSALS = Refusals("agent page", AcdError, {**AGENT_STATUS, **CALL_STATUS}, 409)
PARTY_REFUSALS = Refusals("agent page", SupervisionError, SUPERVISION_STATUS, 409)
PARTY = re.compile(r"^\+?[0-9]{2,20}$")


def build_agent_pages(pages: Pages, contact: ContactCentre, zone: datetime.tzinfo) -> APIRouter:
    """The agent pages."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    viewer = pages.needs("viewer")
    Operator = Annotated[UserSession, pages.changes("operator")]
    service = contact.service

    def show(
        request: Request, session: UserSession, number: str, outcome: Outcome = SHOWN
    ) -> Response:
        template = "agent_live.html" if request.headers.get("HX-Request") else "agent.html"
        return pages.render(
            request,
            session,
            template,
            outcome.status,
            poll_s=POLL_S,
            reasons=PAUSE_REASONS,
            notice=outcome.notice,
            refusal=outcome.refusal,
            **agent_view(contact, number, zone),
        )

    def act(
        request: Request, session: UserSession, number: str, action: Callable[[], object], done: str
    ) -> Response:
        def run() -> str:
            action()
            return done

        return show(request, session, number, REFUSALS.attempt(number, run))

    def button(call: Callable[[str], object], done: str) -> Callable[..., Awaitable[Response]]:
        async def pressed(request: Request, session: Operator, number: AgentNumber) -> Response:
            return act(request, session, number, lambda: call(number), done)

        return pressed

    @router.get("/agent/{number}")
    async def agent_page(
        request: Request, session: Annotated[UserSession, viewer], number: AgentNumber
    ) -> Response:
        return show(request, session, number)

    for path, call, done in (
        ("login", service.login, "Logged in"),
        ("logout", service.logout, "Logged out"),
        ("resume", service.resume, "Available"),
        ("hangup", contact.calls.hangup, "Hung up"),
        ("answer", contact.calls.answer, "Answering on the desk phone"),
    ):
        router.add_api_route(f"/agent/{{number}}/{path}", button(call, done), methods=["POST"])

    @router.post("/agent/{number}/pause")
    async def pause(
        request: Request, session: Operator, number: AgentNumber, reason: FormText = ""
    ) -> Response:
        if reason not in PAUSE_REASONS:
            raise PageError(422, "unknown-pause-reason", f"pause reasons: {PAUSE_REASONS}")
        return act(
            request, session, number, lambda: service.pause(number, reason), f"Paused: {reason}"
        )

    @router.post("/agent/{number}/transfer")
    async def transfer(
        request: Request, session: Operator, number: AgentNumber, to: FormText = ""
    ) -> Response:
        return act(
            request,
            session,
            number,
            lambda: contact.calls.transfer(number, to),
            f"Transferring the caller to {to}",
        )

    @router.post("/agent/{number}/three-way")
    async def three_way(
        request: Request, session: Operator, number: AgentNumber, party: FormText = ""
    ) -> Response:
        if not PARTY.match(party):
            raise PageError(422, "party-invalid", "the party is + and 2-20 digits")

        def run() -> str:
            contact.supervision.three_way(number, party)
            return f"Calling {party} into the call"

        return show(request, session, number, PARTY_REFUSALS.attempt(number, run))

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
