"""``/api/v1/ivr/flows``: list, read and replace IVR flows.

Every role reads (``viewer``); only ``admin`` replaces a flow. ``PUT`` validates the
whole flow and answers 422 ``ivr-flow-invalid`` with ``details.problems`` (each names
its node) or 200 with the new version; calls already inside the flow keep the version
they started with. Errors are ``{"detail": {"error_id", "message", "details"}}`` like the
call API's: also ``ivr-flow-not-found`` (404) and ``ivr-not-started`` (503).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path

from appliance.access import local_access
from appliance.ivr.model import NAME
from appliance.ivr.store import FlowRegistry
from appliance.ivr.validate import FlowInvalidError
from drivers.daemon.api_docs import NestedErrorBody, ValidationErrors, error_responses
from drivers.daemon.settings_base import ApiToken

FlowName = Annotated[str, Path(pattern=NAME)]


def api_error(status: int, error_id: str, message: str, **details: Any) -> HTTPException:
    """An HTTP error with the API's error body."""
    body = {"error_id": error_id, "message": message, "details": details}
    return HTTPException(status_code=status, detail=body)


def build_ivr_router(registry: FlowRegistry, tokens: Sequence[ApiToken]) -> APIRouter:
    """The IVR flow routes, guarded by the configured bearer tokens."""
    access = local_access(tokens, api_error)
    errors = error_responses(NestedErrorBody, ValidationErrors)
    router = APIRouter(prefix="/api/v1/ivr", tags=["ivr"], responses=errors)

    @router.get("/flows", summary="Every IVR flow's current version",
                dependencies=[access.needs("viewer")])  # fmt: skip
    def list_flows() -> dict[str, Any]:
        return {"flows": [v.summary() for v in registry.all()]}

    @router.get("/flows/{name}", summary="One IVR flow, current version",
                dependencies=[access.needs("viewer")])  # fmt: skip
    def get_flow(name: FlowName) -> dict[str, Any]:
        found = registry.get(name)
        if found is None:
            raise api_error(404, "ivr-flow-not-found", f"no IVR flow {name}")
        return found.document()

    @router.put("/flows/{name}", summary="Replace (or create) an IVR flow: the next version",
                dependencies=[access.needs("admin")])  # fmt: skip
    def put_flow(name: FlowName, doc: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        if not registry.attached:
            raise api_error(503, "ivr-not-started", "the PBX is starting or stopped")
        try:
            return registry.put(name, doc).document()
        except FlowInvalidError as err:
            problems = [{"node": p.node, "message": p.message} for p in err.problems]
            raise api_error(422, err.error_id, str(err), problems=problems) from None

    return router
