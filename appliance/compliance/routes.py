"""The local API for compliance: the site's do-not-call list and the pre-dial check.

Bearer tokens from the appliance's ``api.tokens`` (appliance/access.py): every role reads
and checks; ``admin`` and ``operator`` change the list. Errors are ``{"error_id",
"message", "details"}``.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from appliance.access import local_access
from appliance.compliance.service import ComplianceService, NumberError
from drivers.daemon.api_docs import ErrorBody, ValidationErrors, error_responses
from drivers.daemon.settings_base import ApiToken


class LocalApiError(Exception):
    """An error answered as JSON with a stable ``error_id``."""

    def __init__(
        self, status: int, error_id: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message = status, error_id, message
        self.details = details or {}


def install_error_handler(app: FastAPI) -> None:
    """Answer LocalApiError in the common error shape."""

    @app.exception_handler(LocalApiError)
    async def _error(_request: Request, err: LocalApiError) -> JSONResponse:
        body = {"error_id": err.error_id, "message": err.message, "details": err.details}
        return JSONResponse(body, status_code=err.status)


class DncEntry(BaseModel):
    reason: str = Field("", max_length=256)


class CheckRequest(BaseModel):
    destination: str = Field(min_length=1, max_length=64)
    campaign: str | None = None


def build_compliance_router(tokens: Sequence[ApiToken], compliance: ComplianceService) -> APIRouter:
    """The /api/v1/compliance routes of the appliance's local API."""
    errors = error_responses(ErrorBody, ValidationErrors)
    router = APIRouter(prefix="/api/v1/compliance", tags=["compliance"], responses=errors)
    access = local_access(tokens, LocalApiError)
    role = Annotated[str, access.needs("viewer")]
    writer = Annotated[str, access.needs("operator")]

    @router.get("/dnc", summary="The site's do-not-call list and the company list's version")
    def get_dnc(who: role) -> dict[str, Any]:
        return {**compliance.site_dnc(), "company_version": compliance.company_version}

    @router.put("/dnc/{number}", summary="Put a number on the site's do-not-call list")
    def put_dnc(number: str, entry: DncEntry, who: writer) -> dict[str, Any]:
        return {"number": _number(compliance.add_site_dnc, number, entry.reason)}

    @router.delete("/dnc/{number}", summary="Take a number off the site's do-not-call list")
    def delete_dnc(number: str, who: writer) -> dict[str, Any]:
        if not _number(compliance.remove_site_dnc, number):
            raise LocalApiError(404, "not-listed", f"{number} is not on the site's list")
        return {"number": number, "removed": True}

    @router.post("/check", summary="May this destination be dialled now (counts an attempt)")
    def check(request: CheckRequest, who: role) -> dict[str, Any]:
        return dataclasses.asdict(compliance.check(request.destination, request.campaign))

    return router


def _number(action: Callable[..., Any], number: str, *args: Any) -> Any:
    try:
        return action(number, *args)
    except NumberError as err:
        raise LocalApiError(422, "bad-number", str(err)) from None
