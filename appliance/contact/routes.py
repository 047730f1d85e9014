"""``/api/v1/contact``: live queues, agent actions and the CTI event stream.

Handlers are coroutines, so they run on the event loop that owns the ACD. Every role
reads (``viewer``): the queues with their waiting callers and agents, and the event
stream (Server-Sent Events). Agent actions (login, logout, pause with a reason, resume)
need ``operator``. Errors are ``{"detail": {"error_id", "message", "details"}}``:
``agent-not-found`` (404), ``agent-busy`` and ``agent-not-paused`` (409)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from appliance.contact.acd import Agent
from appliance.contact.api import AgentNumber, contact_router, refusals_as_errors
from appliance.contact.service import ContactService
from drivers.daemon.settings_base import ApiToken

STATUS = {"agent-not-found": 404, "agent-busy": 409, "agent-not-paused": 409}


class PauseRequest(BaseModel):
    """Why the agent pauses (a reason code: lunch, training, ...)."""

    reason: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")


def build_contact_router(service: ContactService, tokens: Sequence[ApiToken]) -> APIRouter:
    """The contact-centre routes, guarded by the configured bearer tokens."""
    router, access = contact_router(tokens)
    viewer, operator = [access.needs("viewer")], [access.needs("operator")]

    @router.get("/queues", summary="Live queues: waiting callers and agents",
                dependencies=viewer)  # fmt: skip
    async def queues() -> dict[str, Any]:
        return service.snapshot()

    @router.get("/events", summary="The CTI event stream (text/event-stream)",
                dependencies=viewer)  # fmt: skip
    async def events() -> StreamingResponse:
        return StreamingResponse(service.cti.follow(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})  # fmt: skip

    @router.post("/agents/{number}/login", summary="Log an agent in", dependencies=operator)
    async def login(number: AgentNumber) -> dict[str, Any]:
        return _act(lambda: service.login(number))

    @router.post("/agents/{number}/logout", summary="Log an agent out", dependencies=operator)
    async def logout(number: AgentNumber) -> dict[str, Any]:
        return _act(lambda: service.logout(number))

    @router.post("/agents/{number}/pause", summary="Pause an agent with a reason",
                 dependencies=operator)  # fmt: skip
    async def pause(number: AgentNumber, body: Annotated[PauseRequest, Body()]) -> dict[str, Any]:
        return _act(lambda: service.pause(number, body.reason))

    @router.post("/agents/{number}/resume", summary="End an agent's pause",
                 dependencies=operator)  # fmt: skip
    async def resume(number: AgentNumber) -> dict[str, Any]:
        return _act(lambda: service.resume(number))

    return router


def _act(action: Callable[[], Agent]) -> dict[str, Any]:
    """Run an agent action on the event loop (the ACD's one owner)."""
    agent = refusals_as_errors(action, STATUS)
    return {"agent": agent.number, "state": agent.state, "reason": agent.reason or None}
