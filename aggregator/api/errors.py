"""HQ API errors: a stable kebab-case ``error_id``, a message for people, ``details``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

HTTP_ERROR_IDS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "request-too-large",
}

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered to the API client as JSON."""

    def __init__(
        self, status: int, error_id: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message
        self.details = details or {}


def body(error_id: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON body of every API error."""
    return {"error_id": error_id, "message": message, "details": details or {}}


def install_error_handlers(app: FastAPI) -> None:
    """Answer ApiError, request validation and HTTP-level failures in the common shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> JSONResponse:
        log.info("api error", extra={"path": request.url.path, "error_id": err.error_id})
        return JSONResponse(body(err.error_id, err.message, err.details), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = [
            {"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in err.errors()
        ]
        first = problems[0] if problems else {"where": "request", "problem": "invalid"}
        message = f"{first['where']}: {first['problem']}"
        log.info("invalid request", extra={"path": request.url.path, "detail": message})
        return JSONResponse(
            body("invalid-request", message, {"problems": problems}), status_code=422
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, err: HTTPException) -> JSONResponse:
        error_id = HTTP_ERROR_IDS.get(err.status_code, f"http-{err.status_code}")
        log.info("http error", extra={"path": request.url.path, "error_id": error_id})
        return JSONResponse(
            body(error_id, str(err.detail)), status_code=err.status_code, headers=err.headers
        )
