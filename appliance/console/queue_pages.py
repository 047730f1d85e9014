"""The supervisor page: every queue live (waiting callers, agents) with monitor, whisper
and barge buttons on each agent's call.

``GET /console/queues?supervisor=1002`` is the page; the supervisor's extension, whose
phone the worker rings, is chosen in a form at the top (outside the part htmx replaces
every ``POLL_S``, so typing is never lost) and travels with the buttons. A button
``POST``s to the same function as ``POST /api/v1/contact/agents/{n}/monitor`` (or
``.../monitor/mode`` when a supervisor is already on that call); refusals are shown as
messages with their ``error_id``.
"""

import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from appliance.console.web import PREFIX, SHOWN, Outcome, Pages, Refusals, UserSession
from appliance.contact.api import AgentNumber
from appliance.contact.supervision_routes import STATUS
from appliance.contact.supervisors import Mode, SupervisionError
from appliance.contact.wiring import ContactCentre

POLL_S = 1
REFUSALS = Refusals("supervisor page", SupervisionError, STATUS, 422)
EXTENSION = re.compile(r"^[0-9]{2,8}$")
MODES: tuple[Mode, ...] = ("monitor", "whisper", "barge")


def build_queue_pages(pages: Pages, contact: ContactCentre) -> APIRouter:
    """``/console/queues`` and its supervision buttons."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    viewer, operator = pages.needs("viewer"), pages.changes("operator")

    def show(
        request: Request,
        session: UserSession,
        supervisor: str,
        outcome: Outcome = SHOWN,
    ) -> Response:
        template = "queues_live.html" if request.headers.get("HX-Request") else "queues.html"
        chosen = supervisor if EXTENSION.match(supervisor) else ""
        return pages.render(
            request,
            session,
            template,
            outcome.status,
            page="queues",
            poll_s=POLL_S,
            modes=MODES,
            supervisor=chosen,
            notice=outcome.notice,
            refusal=outcome.refusal,
            queues=queues_view(contact),
        )

    @router.get("/queues")
    async def queues_page(
        request: Request, session: Annotated[UserSession, viewer], supervisor: str = ""
    ) -> Response:
        return show(request, session, supervisor)

    @router.post("/queues/agents/{number}/supervise")
    async def supervise(
        request: Request,
        session: Annotated[UserSession, operator],
        number: AgentNumber,
        mode: Annotated[str, Form()],
        supervisor: Annotated[str, Form()] = "",
    ) -> Response:
        outcome = REFUSALS.attempt(number, lambda: _supervise(contact, number, supervisor, mode))
        return show(request, session, supervisor, outcome)

    return router


def queues_view(contact: ContactCentre) -> list[dict[str, Any]]:
    """The live queues, each agent with the supervision session on its call (if any)."""
    sessions = {s["agent"]: s for s in contact.supervision.snapshot()["sessions"]}
    queues: list[dict[str, Any]] = contact.service.snapshot()["queues"]
    for queue in queues:
        for agent in queue["agents"]:
            agent["supervised"] = sessions.get(agent["agent"])
    return queues


def _supervise(contact: ContactCentre, agent: str, supervisor: str, mode: str) -> str:
    """Ring ``supervisor`` onto the agent's call, or switch the mode of the one on it."""
    chosen = next((m for m in MODES if m == mode), None)
    if chosen is None:
        raise SupervisionError("unknown-mode", f"modes: {', '.join(MODES)}")
    sessions = contact.supervision.snapshot()["sessions"]
    joined = next((s for s in sessions if s["agent"] == agent), None)
    if joined is not None:
        contact.supervision.switch(agent, chosen)
        return f"{joined['supervisor']} switched to {mode} on {agent}'s call"
    if not EXTENSION.match(supervisor):
        raise SupervisionError("supervisor-needed", "enter your extension first")
    contact.supervision.call(agent, supervisor, chosen)
    return f"Ringing {supervisor} to {mode} {agent}'s call"
