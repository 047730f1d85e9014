"""What the contact centre's local API routes share: their router, the agent number in
the path, and refusals of the ACD or the supervisors answered as API errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, TypeVar

from fastapi import APIRouter, Path

from appliance.access import local_access
from appliance.contact.acd import AcdError
from appliance.contact.supervisors import SupervisionError
from appliance.ivr.routes import api_error
from drivers.daemon.access import Access
from drivers.daemon.api_docs import NestedErrorBody, ValidationErrors, error_responses
from drivers.daemon.settings_base import ApiToken

AgentNumber = Annotated[str, Path(pattern=r"^[0-9]{2,8}$")]
T = TypeVar("T")


def contact_router(tokens: Sequence[ApiToken]) -> tuple[APIRouter, Access[str]]:
    """A router under ``/api/v1/contact`` and the access guard of the configured tokens."""
    access = local_access(tokens, api_error)
    errors = error_responses(NestedErrorBody, ValidationErrors)
    return APIRouter(prefix="/api/v1/contact", tags=["contact"], responses=errors), access


def refusals_as_errors(action: Callable[[], T], status: Mapping[str, int]) -> T:
    """``action()``; a refusal answered with its ``error_id`` and the status it maps to."""
    try:
        return action()
    except (AcdError, SupervisionError) as err:
        raise api_error(status[err.error_id], err.error_id, str(err)) from None
