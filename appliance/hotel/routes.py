"""The local API of the PMS link: its status, the rooms, and queueing a charge posting.

``GET /api/v1/hotel/pms`` and ``GET /api/v1/hotel/rooms`` need ``viewer``;
``POST /api/v1/hotel/postings`` needs ``operator`` (appliance/access.py). Errors are
``{"error_id", "message", "details"}``.
"""

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from appliance.access import local_access
from appliance.compliance.routes import LocalApiError
from appliance.hotel.pms_link import PmsLinkService
from appliance.hotel.postings import Posting, PostingError
from appliance.hotel.wakeups import WakeUp, WakeUpBook
from drivers.daemon.settings_base import ApiToken

_FIELD_ID = r"^[A-Z0-9#+]{2}$"


class PostingRequest(BaseModel):
    """A PS: the room, PT and the other fields by FIAS field id (TA in cents, no decimal point)."""

    room: str = Field(min_length=1, max_length=8, pattern=r"^[^|\x00-\x1f\x7f]+$")
    posting_type: Literal["C", "M", "T"]
    fields: dict[str, str] = Field(default_factory=dict)

    def posting(self) -> Posting:
        """The queued form of this request."""
        return Posting.of(self.room, {"PT": self.posting_type, **self.fields})


def build_hotel_router(
    tokens: Sequence[ApiToken], pms: PmsLinkService, wake_ups: WakeUpBook | None = None
) -> APIRouter:
    """The /api/v1/hotel routes of the appliance's local API."""
    router = APIRouter(prefix="/api/v1/hotel", tags=["hotel"])
    access = local_access(tokens, LocalApiError)
    role = Annotated[str, access.needs("viewer")]
    poster = Annotated[str, access.needs("operator")]

    @router.get("/pms", summary="The PMS link: state, night audit, postings waiting, rooms")
    def pms_status(who: role) -> dict[str, Any]:
        return pms.status()

    @router.get("/rooms", summary="Every room: guests, class of service, DND, lamp, wake-ups")
    def rooms(who: role) -> dict[str, Any]:
        book = pms.rooms
        pending = wake_ups.pending() if wake_ups is not None else []
        return {
            "rooms": [
                {**room.document(), "extension": book.extensions.get(room.room),
                 "wake_ups": [_wake_up(w) for w in pending if w.room == room.room]}
                for room in book.rooms()
            ]
        }  # fmt: skip

    @router.post("/postings", summary="Queue a charge posting (PS) durably; answers its P#")
    def post(request: PostingRequest, who: poster) -> dict[str, Any]:
        _check_fields(request.fields)
        try:
            number = pms.post(request.posting())
        except PostingError as err:
            raise LocalApiError(422, err.error_id, str(err)) from None
        return {"posting_number": number}

    return router


def _wake_up(wake_up: WakeUp) -> dict[str, Any]:
    return {"date": wake_up.date, "time": wake_up.time, "due": wake_up.due,
            "attempts": wake_up.attempts, "source": wake_up.source}  # fmt: skip


def _check_fields(fields: dict[str, str]) -> None:
    for key, value in fields.items():
        if not re.match(_FIELD_ID, key) or re.search(r"[|\x00-\x1f\x7f]", value):
            raise LocalApiError(
                422, "bad-field", f"field {key!r}={value!r}: 2-character id, no '|' or controls"
            )
