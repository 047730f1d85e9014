"""The error bodies of the HTTP APIs, as their OpenAPI documents state them.

FastAPI documents only its own validation answer (422 ``{"detail": [...]}``). The APIs
answer other errors in their own shapes, so each router is included with
``responses=error_responses(...)`` and the document says what a client really receives:

- ``ErrorBody`` ``{"error_id", "message", "details"}``: HQ (every error, validation too)
  and the appliance's compliance and SMS routes;
- ``NestedErrorBody`` ``{"detail": ErrorBody}``: the appliance's call routes, which raise
  ``HTTPException``;
- ``ValidationErrors`` ``{"detail": [...]}`` (422) or ``{"detail": "..."}`` (400, a body
  that is not JSON): FastAPI's own answers where no handler replaces them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """An API error: a stable kebab-case id, a message for people, details."""

    error_id: str = Field(examples=["role-forbidden"])
    message: str
    details: dict[str, Any] = {}


class NestedErrorBody(BaseModel):
    """An ``ErrorBody`` under ``detail`` (routes that raise ``HTTPException``)."""

    detail: ErrorBody


class ValidationErrors(BaseModel):
    """FastAPI's own answer to a request it cannot parse or that does not match the route."""

    detail: list[dict[str, Any]] | str


def error_responses(
    body: type[BaseModel], validation: type[BaseModel] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a router whose errors are ``body`` (400/422 may be ``validation``)."""
    invalid: Any = body if validation is None else body | validation
    return {
        "4XX": {"model": body, "description": "refused: error_id says why"},
        400: {"model": invalid, "description": "the request cannot be read"},
        422: {"model": invalid, "description": "the request is not valid"},
        "5XX": {"model": body, "description": "a service is not running or failed"},
    }
