"""``/api/v1/contact/queues/{name}/members/{extension}``: dynamic queue members (operator).

``POST`` adds an extension of this site to the queue (body optional: ``{"penalty": 2,
"skills": {"billing": 4}}``; ``"remote": true`` for another site's extension),
``DELETE`` removes it again (``appliance.contact.members``);
``GET /queues`` shows members with the configured agents. Errors: 404
``queue-not-found``, ``not-a-member``; 409 ``already-member``, ``static-member``,
``agent-busy``; 422 ``unknown-extension`` or a bad penalty or skill."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, Field, ValidationError

from appliance.access import local_access
from appliance.contact.acd import AcdError
from appliance.contact.members import Members
from appliance.contact.settings import QUEUE_NAME, AgentSettings
from appliance.ivr.routes import api_error
from drivers.daemon.api_docs import NestedErrorBody, ValidationErrors, error_responses
from drivers.daemon.settings_base import ApiToken

QueueName = Annotated[str, Path(pattern=QUEUE_NAME)]
Extension = Annotated[str, Path(pattern=r"^[0-9]{2,8}$")]
STATUS = {"queue-not-found": 404, "not-a-member": 404, "already-member": 409,
          "static-member": 409, "agent-busy": 409, "unknown-extension": 422,
          "not-started": 503}  # fmt: skip


class MemberRequest(BaseModel):
    """The member's penalty (0 first) and skill levels in this queue."""

    penalty: int = Field(0, ge=0, le=99)
    skills: dict[str, int] = Field(default_factory=dict)
    remote: bool = False


def build_member_router(members: Members, tokens: Sequence[ApiToken]) -> APIRouter:
    """The membership routes, guarded by the configured bearer tokens."""
    access = local_access(tokens, api_error)
    errors = error_responses(NestedErrorBody, ValidationErrors)
    router = APIRouter(prefix="/api/v1/contact", tags=["contact"], responses=errors)
    operator = [access.needs("operator")]

    @router.post("/queues/{name}/members/{extension}", summary="Add a member to a queue",
                 dependencies=operator)  # fmt: skip
    async def add(
        name: QueueName, extension: Extension,
        body: Annotated[MemberRequest | None, Body()] = None,
    ) -> dict[str, Any]:  # fmt: skip
        request = body or MemberRequest()
        try:
            member = AgentSettings(extension=extension, penalty=request.penalty,
                                   skills=request.skills, remote=request.remote)  # fmt: skip
        except ValidationError as err:
            raise api_error(422, "member-invalid", str(err.errors()[0]["msg"])) from None
        try:
            agent = members.add(name, member)
        except AcdError as err:
            raise api_error(STATUS[err.error_id], err.error_id, str(err)) from None
        return {"queue": name, "agent": agent.number, "state": agent.state,
                "penalty": member.penalty, "skills": member.skills,
                "remote": member.remote}  # fmt: skip

    @router.delete("/queues/{name}/members/{extension}", summary="Remove a queue's member",
                   dependencies=operator)  # fmt: skip
    async def remove(name: QueueName, extension: Extension) -> dict[str, Any]:
        try:
            members.remove(name, extension)
        except AcdError as err:
            raise api_error(STATUS[err.error_id], err.error_id, str(err)) from None
        return {"queue": name, "agent": extension, "removed": True}

    return router
