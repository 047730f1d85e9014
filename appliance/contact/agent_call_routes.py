"""``/api/v1/contact/agents/{n}``: answer on desk, hang up or transfer the agent's queue
call (operator).

``POST /agents/{n}/answer`` has the agent's ringing phone answer by itself (auto-answer);
``POST /agents/{n}/hangup`` ends the call; ``POST /agents/{n}/transfer {"to": "1005"}``
sends the caller to another extension of this site (``appliance.contact.agent_calls``).
Errors: 404 ``agent-not-found``, 409 ``agent-not-on-call``, ``agent-not-ringing``, 422
``unknown-extension``,
503 ``worker-unavailable``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from appliance.contact.agent_calls import AgentCalls, CallAction
from appliance.contact.api import AgentNumber, contact_router, refusals_as_errors
from drivers.daemon.settings_base import ApiToken

STATUS = {
    "agent-not-found": 404,
    "agent-not-on-call": 409,
    "agent-not-ringing": 409,
    "unknown-extension": 422,
    "worker-unavailable": 503,
}


class TransferRequest(BaseModel):
    """The extension the caller goes to."""

    to: str = Field(pattern=r"^[0-9]{2,8}$")


def build_agent_call_router(calls: AgentCalls, tokens: Sequence[ApiToken]) -> APIRouter:
    """Hang-up and transfer routes, guarded by the configured bearer tokens."""
    router, access = contact_router(tokens)
    operator = [access.needs("operator")]

    @router.post(
        "/agents/{number}/answer",
        summary="Answer the caller ringing the agent on its desk phone (auto-answer)",
        dependencies=operator,
    )
    async def answer(number: AgentNumber) -> dict[str, Any]:
        return call_action(lambda: calls.answer(number))

    @router.post(
        "/agents/{number}/hangup", summary="Hang up the agent's queue call", dependencies=operator
    )
    async def hangup(number: AgentNumber) -> dict[str, Any]:
        return call_action(lambda: calls.hangup(number))

    @router.post(
        "/agents/{number}/transfer",
        summary="Transfer the caller of the agent's queue call to another extension",
        dependencies=operator,
    )
    async def transfer(
        number: AgentNumber, body: Annotated[TransferRequest, Body()]
    ) -> dict[str, Any]:
        return call_action(lambda: calls.transfer(number, body.to))

    return router


def call_action(action: Callable[[], CallAction]) -> dict[str, Any]:
    """Run a call action on the event loop; refusals as API errors."""
    return refusals_as_errors(action, STATUS).record()
