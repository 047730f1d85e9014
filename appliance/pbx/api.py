"""Local call API: live calls, CDR search, recordings (metadata and WAV download).

Every route needs ``Authorization: Bearer <token>`` with a token from ``api.tokens``
(any role may read). Errors are ``{"detail": {"error_id", "message", "details"}}`` with
a stable kebab-case ``error_id``: ``unauthorized``, ``invalid-disposition``,
``recording-not-found``, ``recording-file-gone``, ``pbx-not-started``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import FileResponse

from appliance.pbx.calls import CallService
from appliance.pbx.cdr import DISPOSITIONS
from appliance.pbx.errors import PbxNotStartedError
from appliance.pbx.recordings import RecordingService
from drivers.runtime.settings_base import ApiToken


def api_error(status: int, error_id: str, message: str, **details: Any) -> HTTPException:
    """An HTTP error with the API's error body."""
    body = {"error_id": error_id, "message": message, "details": details}
    return HTTPException(status_code=status, detail=body)


def build_router(
    get_calls: Callable[[], CallService],
    get_recordings: Callable[[], RecordingService],
    tokens: Sequence[ApiToken],
) -> APIRouter:
    """The ``/api/v1`` call routes, guarded by the configured bearer tokens.

    The services are looked up per request, so the router can be mounted before the PBX
    has started; until then every route answers 503 ``pbx-not-started``.
    """
    secrets = [t.token.encode() for t in tokens]

    def calls() -> CallService:
        try:
            return get_calls()
        except PbxNotStartedError:
            raise api_error(503, "pbx-not-started", "the PBX is starting or stopped") from None

    def recordings() -> RecordingService:
        try:
            return get_recordings()
        except PbxNotStartedError:
            raise api_error(503, "pbx-not-started", "the PBX is starting or stopped") from None

    def authorized(authorization: Annotated[str, Header()] = "") -> None:
        scheme, _, token = authorization.partition(" ")
        presented = token.strip().encode()
        valid = any(hmac.compare_digest(presented, s) for s in secrets)
        if scheme.lower() != "bearer" or not valid:
            raise api_error(401, "unauthorized", "send Authorization: Bearer <api token>")

    router = APIRouter(prefix="/api/v1", tags=["calls"], dependencies=[Depends(authorized)])

    @router.get("/calls", summary="Calls in progress")
    def live_calls() -> dict[str, Any]:
        return {"calls": calls().live_calls()}

    @router.get("/cdrs", summary="Search CDRs (oldest first, paged by cursor)")
    def search_cdrs(
        since: str = "",
        disposition: str | None = None,
        number: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: str = "",
    ) -> dict[str, Any]:
        if disposition is not None and disposition not in DISPOSITIONS:
            raise api_error(
                422, "invalid-disposition", "unknown disposition", valid=list(DISPOSITIONS)
            )
        page, next_cursor = calls().search(since, disposition, number, limit, cursor)
        return {"cdrs": page, "next_cursor": next_cursor}

    def recording(recording_id: str) -> dict[str, Any]:
        entry = recordings().get(recording_id)
        if entry is None:
            raise api_error(404, "recording-not-found", "no such recording", id=recording_id)
        return entry

    @router.get("/recordings/{recording_id}", summary="Recording metadata")
    def recording_meta(recording_id: str) -> dict[str, Any]:
        return recording(recording_id)

    @router.get("/recordings/{recording_id}/wav", summary="Download a recording as WAV")
    def recording_wav(recording_id: str) -> FileResponse:
        path = Path(recording(recording_id)["path"])
        if not path.exists():
            raise api_error(410, "recording-file-gone", "the WAV file was removed", path=str(path))
        return FileResponse(path, media_type="audio/wav", filename=f"{recording_id}.wav")

    return router
