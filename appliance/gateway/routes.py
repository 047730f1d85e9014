"""The gateway's local API: send SMS, read the inbox, run USSD codes.

Bearer tokens from ``api.tokens`` (any role). Errors are ``{"error_id", "message",
"details"}``: ``bad-destination``, ``empty-text``, ``unknown-channel``, ``sms-not-found``,
``bad-ussd-code``, ``ussd-failed``, ``gateway-not-started``, and 422 for bodies that do
not validate.
"""

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from appliance.compliance.routes import LocalApiError, token_role
from appliance.gateway.messages import MessagingError, MessagingService
from drivers.runtime.settings_base import ApiToken


class SmsRequest(BaseModel):
    """An SMS to send; ``channel`` pins the GSM channel (else any with budget)."""

    to: str = Field(min_length=3, max_length=32)
    text: str = Field(min_length=1, max_length=1600)
    channel: str | None = None


class UssdRequest(BaseModel):
    """A USSD code to run on one channel, e.g. ``*100#`` for the balance."""

    channel: str
    code: str = Field(min_length=2, max_length=40)


def build_gateway_router(tokens: Sequence[ApiToken], messages: MessagingService) -> APIRouter:
    """The /api/v1 SMS and USSD routes."""
    router = APIRouter(prefix="/api/v1", tags=["gateway"])
    role = Annotated[str, Depends(token_role(tokens))]

    def refused(err: MessagingError) -> LocalApiError:
        return LocalApiError(err.status, err.error_id, err.message)

    @router.post("/sms", status_code=202, summary="Queue an SMS")
    def send_sms(request: SmsRequest, who: role) -> dict[str, Any]:
        try:
            return messages.submit(request.to, request.text, request.channel)
        except MessagingError as err:
            raise refused(err) from None

    @router.get("/sms/inbox", summary="Received SMS, newest first")
    def inbox(who: role, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        try:
            return {"messages": messages.inbox(limit)}
        except MessagingError as err:
            raise refused(err) from None

    @router.get("/sms/{sms_id}", summary="An outgoing SMS and its state")
    def get_sms(sms_id: str, who: role) -> dict[str, Any]:
        try:
            return messages.get(sms_id)
        except MessagingError as err:
            raise refused(err) from None

    @router.post("/ussd", summary="Run a USSD code (e.g. a balance check)")
    async def ussd(request: UssdRequest, who: role) -> dict[str, Any]:
        try:
            reply = await messages.ussd(request.channel, request.code)
        except MessagingError as err:
            raise refused(err) from None
        return {"channel": request.channel, "code": request.code, "reply": reply}

    return router
