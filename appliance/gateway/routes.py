"""The local API for SMS and USSD on a SIM gateway.

Bearer tokens from the appliance's ``api.tokens`` (appliance/access.py): every role
reads; ``admin`` and ``operator`` send SMS and run USSD codes. Errors are
``{"error_id", "message", "details"}``.
"""

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from appliance.access import local_access
from appliance.compliance.routes import LocalApiError
from appliance.gateway.sms import SmsService
from appliance.gateway.sms_policy import SmsError
from drivers.daemon.api_docs import ErrorBody, ValidationErrors, error_responses
from drivers.daemon.settings_base import ApiToken

STATUS = {
    "unknown-channel": 404,
    "unknown-sms": 404,
    "dnc-site": 403,
    "dnc-company": 403,
    "outside-calling-hours": 403,
    "attempt-limit": 403,
    "channel-not-ready": 409,
    "ussd-busy": 409,
    "modem-error": 502,
    "not-started": 503,
    "ussd-timeout": 504,
}


class SmsRequest(BaseModel):
    """Lengths are checked by the service, which answers with a specific error_id."""

    to: str
    text: str
    channel: str | None = None


class UssdRequest(BaseModel):
    channel: str
    code: str


def _refused(err: SmsError) -> LocalApiError:
    return LocalApiError(STATUS.get(err.error_id, 422), err.error_id, err.message, err.details)


def build_sms_router(tokens: Sequence[ApiToken], sms: SmsService) -> APIRouter:
    """The /api/v1/sms and /api/v1/ussd routes of the appliance's local API."""
    errors = error_responses(ErrorBody, ValidationErrors)
    router = APIRouter(prefix="/api/v1", tags=["sms"], responses=errors)
    access = local_access(tokens, LocalApiError)
    role = Annotated[str, access.needs("viewer")]
    sender = Annotated[str, access.needs("operator")]

    @router.post("/sms", status_code=202, summary="Queue an SMS (id and status queued)")
    async def send(request: SmsRequest, who: sender) -> dict[str, Any]:
        try:
            return await sms.submit(request.to, request.text, request.channel)
        except SmsError as err:
            raise _refused(err) from None

    @router.get("/sms/{sms_id}", summary="One SMS, sent or received, with its status")
    async def get(sms_id: str, who: role) -> dict[str, Any]:
        try:
            return await sms.get(sms_id)
        except SmsError as err:
            raise _refused(err) from None

    @router.get("/sms", summary="Stored SMS of one direction, newest first")
    async def search(
        who: role,
        direction: Literal["in", "out"] = "out",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        try:
            records, after = await sms.page(direction, limit, cursor)
        except SmsError as err:
            raise _refused(err) from None
        return {"sms": records, "next_cursor": after}

    @router.post("/ussd", summary="Run a USSD code (e.g. a balance check) and return the reply")
    async def ussd(request: UssdRequest, who: sender) -> dict[str, Any]:
        try:
            return await sms.ussd(request.channel, request.code)
        except SmsError as err:
            raise _refused(err) from None

    return router
