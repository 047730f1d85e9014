"""``/api/v1/contact``: supervisors on agents' calls (monitor, whisper, barge).

``POST /agents/{n}/monitor`` rings the supervisor's phone from the worker that bridges
the agent's call; once answered, the supervisor joins in ``mode``. ``POST
/agents/{n}/monitor/mode`` switches a joined session's mode. ``POST /agents/{n}/three-way``
rings a number from the agent's extension and joins it to the agent's call (the
agent's three-way). A call no worker bridges (direct, outbound) is anchored on one first
(the session is ``anchoring`` meanwhile). All three need ``operator``;
``GET /supervisions`` (``viewer``) lists the sessions. Refusals carry the error ids of
``appliance.contact.supervisors``: 403 ``not-a-supervisor``, ``supervising-self``,
``queue-not-permitted``; 404 ``agent-not-found``, ``not-supervised``; 409
``agent-not-on-call``, ``agent-logged-out``, ``already-supervised``, ``not-joined``; 503
``media-workers-busy`` (no worker can take a direct call over)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from appliance.contact.api import AgentNumber, contact_router, refusals_as_errors
from appliance.contact.supervision import Session, SupervisionService
from appliance.contact.supervisors import Mode
from drivers.daemon.settings_base import ApiToken

STATUS = {"not-a-supervisor": 403, "supervising-self": 403, "queue-not-permitted": 403,
          "agent-not-found": 404, "not-supervised": 404, "agent-not-on-call": 409,
          "agent-logged-out": 409,
          "already-supervised": 409, "not-joined": 409,
          "media-workers-busy": 503}  # fmt: skip


class MonitorRequest(BaseModel):
    """Who supervises, and how it joins."""

    supervisor: str = Field(pattern=r"^[0-9]{2,8}$")
    mode: Mode = "monitor"


class PartyRequest(BaseModel):
    """The third party of a three-way: an extension or a number the agent may dial."""

    number: str = Field(pattern=r"^\+?[0-9]{2,20}$")


class ModeRequest(BaseModel):
    """The mode to switch to."""

    mode: Mode


def build_supervision_router(service: SupervisionService,
                             tokens: Sequence[ApiToken]) -> APIRouter:  # fmt: skip
    """The supervision routes, guarded by the configured bearer tokens."""
    router, access = contact_router(tokens)
    viewer, operator = [access.needs("viewer")], [access.needs("operator")]

    @router.get("/supervisions", summary="Supervisors on agents' calls", dependencies=viewer)
    async def supervisions() -> dict[str, Any]:
        return service.snapshot()

    @router.post("/agents/{number}/monitor", summary="Ring a supervisor, then join the "
                 "agent's call (monitor, whisper or barge)", dependencies=operator)  # fmt: skip
    async def monitor(number: AgentNumber,
                      body: Annotated[MonitorRequest, Body()]) -> dict[str, Any]:  # fmt: skip
        return _act(lambda: service.call(number, body.supervisor, body.mode))

    @router.post("/agents/{number}/monitor/mode", summary="Switch a supervisor's mode",
                 dependencies=operator)  # fmt: skip
    async def mode(number: AgentNumber, body: Annotated[ModeRequest, Body()]) -> dict[str, Any]:
        return _act(lambda: service.switch(number, body.mode))

    @router.post("/agents/{number}/three-way", dependencies=operator,
                 summary="Ring a number and join it to the agent's call")  # fmt: skip
    async def three_way(number: AgentNumber,
                        body: Annotated[PartyRequest, Body()]) -> dict[str, Any]:  # fmt: skip
        return _act(lambda: service.three_way(number, body.number))

    return router


def _act(action: Callable[[], Session]) -> dict[str, Any]:
    """Run a supervision action on the event loop (the sessions' one owner)."""
    return refusals_as_errors(action, STATUS).record()
