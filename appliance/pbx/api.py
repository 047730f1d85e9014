"""Local call API: live calls, CDR search, recordings, and call control.

Call control: click-to-dial (``POST /calls``), hang up (``DELETE /calls/{id}``),
start/stop recording, conferences and three-way calls, each answered with the
operation's state. Every route needs ``Authorization: Bearer <token>`` with a token
from ``api.tokens``: every role reads, call control needs ``operator`` or ``admin``
(appliance/access.py). Errors are ``{"detail": {"error_id", "message", "details"}}``
with a stable kebab-case ``error_id``: ``missing-token``, ``bad-token``,
``role-forbidden``, ``invalid-disposition``,
``recording-not-found``, ``recording-file-gone``, ``pbx-not-started``, and those of
``CallControlError`` (``unknown-extension``, ``class-of-service``, ``no-route``,
``call-not-found``, ``call-not-answered``, ``recording-not-allowed``,
``media-workers-busy``, ``not-between-extensions``, ``invalid-participants``, ...).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from appliance.access import local_access
from appliance.pbx.calls import CallService
from appliance.pbx.errors import CallControlError, PbxNotStartedError
from appliance.pbx.originate import OriginationService
from appliance.pbx.recordings import RecordingService
from drivers.daemon.api_docs import NestedErrorBody, ValidationErrors, error_responses
from drivers.daemon.settings_base import ApiToken
from drivers.sync.limits import DISPOSITIONS


def api_error(status: int, error_id: str, message: str, **details: Any) -> HTTPException:
    """An HTTP error with the API's error body."""
    body = {"error_id": error_id, "message": message, "details": details}
    return HTTPException(status_code=status, detail=body)


NUMBER = r"^\+?[0-9*#]{1,20}$"


class ClickToDial(BaseModel):
    """Ring ``extension``, then connect it to ``number``."""

    extension: str = Field(pattern=r"^[0-9]{2,8}$")
    number: str = Field(pattern=NUMBER)


class ConferenceRequest(BaseModel):
    """Dial everyone into one room; ``on_behalf_of``'s class of service applies."""

    participants: list[str] = Field(min_length=2, max_length=4)
    on_behalf_of: str = Field(pattern=r"^[0-9]{2,8}$")


class AddParty(BaseModel):
    """The number to add to a call, making it a three-way conference."""

    number: str = Field(pattern=NUMBER)


class RecordingChange(BaseModel):
    """Whether the call should be recorded from now on."""

    recording: bool


class Controls(Protocol):
    """What the routes need from the branch exchange."""

    originations: OriginationService

    async def hangup(self, call_id: str) -> dict[str, Any]: ...

    async def set_recording(self, call_id: str, on: bool) -> dict[str, Any]: ...

    async def trunks(self) -> list[dict[str, Any]]: ...

    async def three_way(self, call_id: str, number: str) -> dict[str, Any]: ...
    async def gsm_channels(self) -> list[dict[str, Any]]: ...


def build_router(
    get_calls: Callable[[], CallService],
    get_recordings: Callable[[], RecordingService],
    control: Controls,
    tokens: Sequence[ApiToken],
) -> APIRouter:
    """The ``/api/v1`` call routes, guarded by the configured bearer tokens.

    The services are looked up per request, so the router can be mounted before the PBX
    has started; until then every route answers 503 ``pbx-not-started``.
    """
    access = local_access(tokens, api_error)
    viewer = [access.needs("viewer")]
    operator = [access.needs("operator")]

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

    errors = error_responses(NestedErrorBody, ValidationErrors)
    router = APIRouter(prefix="/api/v1", tags=["calls"], responses=errors)

    @contextlib.contextmanager
    def refusals() -> Iterator[None]:
        """A CallControlError becomes the API's error body with its status."""
        try:
            yield
        except CallControlError as err:
            raise api_error(err.status, err.error_id, str(err), **err.details) from None

    @router.get("/calls", summary="Calls in progress", dependencies=viewer)
    def live_calls() -> dict[str, Any]:
        return {"calls": calls().live_calls()}

    @router.post(
        "/calls",
        status_code=202,
        summary="Click-to-dial: ring an extension, then dial",
        dependencies=operator,
    )
    def click_to_dial(request: ClickToDial) -> dict[str, Any]:
        calls()
        with refusals():
            return control.originations.click_to_dial(request.extension, request.number)

    @router.delete(
        "/calls/{call_id}",
        summary="Hang up an answered call (BYE to both ends)",
        dependencies=operator,
    )
    async def hangup(call_id: str) -> dict[str, Any]:
        calls()
        with refusals():
            return {"cdr": await control.hangup(call_id)}

    @router.put(
        "/calls/{call_id}/recording",
        summary="Start or stop recording a call",
        dependencies=operator,
    )
    async def recording_change(call_id: str, change: RecordingChange) -> dict[str, Any]:
        calls()
        with refusals():
            return await control.set_recording(call_id, change.recording)

    @router.post("/calls/{call_id}/parties", status_code=202, dependencies=operator,
                 summary="Three-way: move the call into a room, dial one more")  # fmt: skip
    async def add_party(call_id: str, request: AddParty) -> dict[str, Any]:
        calls()
        with refusals():
            return await control.three_way(call_id, request.number)

    @router.post(
        "/conferences",
        status_code=202,
        summary="Dial participants into a conference",
        dependencies=operator,
    )
    def conference(request: ConferenceRequest) -> dict[str, Any]:
        calls()
        with refusals():
            return control.originations.conference(request.participants, request.on_behalf_of)

    @router.get("/trunks", summary="Trunks and their registration state", dependencies=viewer)
    async def trunks() -> dict[str, Any]:
        calls()
        with refusals():
            return {"trunks": await control.trunks()}

    def known_operation(op_id: str, found: dict[str, Any] | None) -> dict[str, Any]:
        if found is None:
            raise api_error(404, "operation-not-found", "no such operation", id=op_id)
        return found

    @router.get(
        "/operations/{op_id}", summary="State of a click-to-dial or conference", dependencies=viewer
    )
    def operation(op_id: str) -> dict[str, Any]:
        return known_operation(op_id, control.originations.get(op_id))

    @router.delete(
        "/operations/{op_id}", summary="End a click-to-dial or conference", dependencies=operator
    )
    def end_operation(op_id: str) -> dict[str, Any]:
        return known_operation(op_id, control.originations.hangup(op_id))

    @router.get("/cdrs", summary="Search CDRs (oldest first, paged by cursor)", dependencies=viewer)
    def search_cdrs(
        since: str = "",
        disposition: str | None = None,
        number: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: str = "",
    ) -> dict[str, Any]:
        if disposition is not None and disposition not in DISPOSITIONS:
            raise api_error(
                422, "invalid-disposition", "unknown disposition", valid=sorted(DISPOSITIONS)
            )
        page, next_cursor = calls().search(since, disposition, number, limit, cursor)
        return {"cdrs": page, "next_cursor": next_cursor}

    def recording(recording_id: str) -> dict[str, Any]:
        entry = recordings().get(recording_id)
        if entry is None:
            raise api_error(404, "recording-not-found", "no such recording", id=recording_id)
        return entry

    @router.get("/recordings/{recording_id}", summary="Recording metadata", dependencies=viewer)
    def recording_meta(recording_id: str) -> dict[str, Any]:
        return recording(recording_id)

    @router.get(
        "/recordings/{recording_id}/wav", summary="Download a recording as WAV", dependencies=viewer
    )
    def recording_wav(recording_id: str) -> FileResponse:
        path = Path(recording(recording_id)["path"])
        if not path.exists():
            raise api_error(410, "recording-file-gone", "the WAV file was removed", path=str(path))
        return FileResponse(path, media_type="audio/wav", filename=f"{recording_id}.wav")

    @router.get(
        "/gsm/channels",
        summary="GSM channels: worker, call, live PCM frame counters",
        dependencies=viewer,
    )
    async def gsm_channels() -> dict[str, Any]:
        with refusals():
            return {"channels": await control.gsm_channels()}

    return router
