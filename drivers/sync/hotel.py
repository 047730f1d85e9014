"""The hotel's records on the sync link: postings the PMS answered and wake-up outcomes.

A hotel appliance appends one record to its ``hotel`` outbox when the PMS finally answered
a charge posting (``HotelPosting``) and when a wake-up call ended (``WakeUpOutcome``), in
the same LMDB commit that ends the posting or the wake-up; they go up in ``hotel-batch``
messages and HQ stores them by (site id, record id). Both ends use the models below, so a
record's shape is written down once: the appliance packs with ``pack_hotel_record``, HQ
parses with ``parse_hotel_record``, which returns a model or raises ``RecordError`` and
nothing else, whatever the bytes. Unknown keys are ignored (a newer site may add some).

Exceptions::

    ProtocolError
     └── RecordError(error_id, message)   one record is not valid; its batch goes on
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from drivers.sync.limits import DURATION_MAX_S, ID_MAX, TIME_MAX_S, TIME_MIN_S
from drivers.sync.protocol import MSGPACK_ERRORS
from drivers.sync.records import RecordError

# FIAS: a room number is ANS up to 8 characters, P# 1..99999999, DA is YYMMDD, TI HHMMSS.
ROOM_MAX = 8
POSTING_NUMBER_MAX = 99_999_999
AMOUNT_MAX = 10**11
QUANTITY_MAX = 999
# The answer statuses of FIAS (AS), and those of a wake-up's one final WA.
ANSWER_STATUSES = Literal[
    "AA", "AN", "BM", "BY", "CD", "CO", "DE", "DM", "DN", "FX", "IA", "NA", "NF", "NG",
    "NM", "NP", "NR", "OK", "RY", "UR", "RF", "SV",
]  # fmt: skip
WAKE_UP_RESULTS = Literal["OK", "BY", "NR", "UR", "DE"]

Ident = Annotated[str, Field(min_length=1, max_length=ID_MAX, pattern=r"^[\x21-\x7e]+$")]
Room = Annotated[str, Field(min_length=1, max_length=ROOM_MAX, pattern=r"^[\x20-\x7e]+$")]
Epoch = Annotated[float, Field(ge=TIME_MIN_S, le=TIME_MAX_S, allow_inf_nan=False)]
FiasDate = Annotated[str, Field(pattern=r"^(\d{6})?$")]
FiasTime = Annotated[str, Field(pattern=r"^(\d{4}|\d{6})?$")]
IsoDate = Annotated[str, Field(pattern=r"^(\d{4}-\d{2}-\d{2})?$")]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    id: Ident
    room: Room


class HotelPosting(_Record):
    """A posting the PMS finally answered (``answer`` OK, or a refusal such as NG).

    ``business_date`` is the hotel's day it was booked to (empty when unknown).
    """

    kind: Literal["posting"] = "posting"
    posting_number: Annotated[int, Field(ge=1, le=POSTING_NUMBER_MAX)]
    posting_type: Literal["C", "M", "T"]
    amount: Annotated[int, Field(ge=-AMOUNT_MAX, le=AMOUNT_MAX)] | None = None
    duration_s: Annotated[int, Field(ge=0, le=int(DURATION_MAX_S))] | None = None
    dialled: Annotated[str, Field(max_length=20, pattern=r"^\d*$")] = ""
    article: Annotated[str, Field(max_length=16)] = ""
    quantity: Annotated[int, Field(ge=0, le=QUANTITY_MAX)] | None = None
    date: FiasDate = ""
    time: FiasTime = ""
    answer: ANSWER_STATUSES
    answer_text: Annotated[str, Field(max_length=256)] = ""
    queued_at: Epoch
    answered_at: Epoch
    business_date: IsoDate = ""


class WakeUpOutcome(_Record):
    """How a wake-up call ended: the result its WA carried, attempts, front desk called."""

    kind: Literal["wake-up"] = "wake-up"
    date: FiasDate
    time: FiasTime
    due_at: Epoch | None = None
    result: WAKE_UP_RESULTS
    attempts: Annotated[int, Field(ge=0, le=1000)]
    front_desk_alerted: bool = False
    source: Literal["pms", "phone"] = "pms"
    ended_at: Epoch


HotelRecord = Annotated[HotelPosting | WakeUpOutcome, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[HotelPosting | WakeUpOutcome] = TypeAdapter(HotelRecord)
_ERROR_IDS = {
    "missing": "record-bad-field",
    "literal_error": "record-bad-enum",
    "union_tag_invalid": "record-bad-enum",
    "union_tag_not_found": "record-bad-field",
    "greater_than_equal": "record-out-of-range",
    "less_than_equal": "record-out-of-range",
    "finite_number": "record-out-of-range",
    "string_too_long": "record-out-of-range",
    "string_too_short": "record-bad-field",
}


def pack_hotel_record(record: HotelPosting | WakeUpOutcome) -> bytes:
    """The wire form of ``record`` (msgpack map)."""
    packed: bytes = msgpack.packb(record.model_dump(), use_bin_type=True)
    return packed


def parse_hotel_record(raw: bytes) -> HotelPosting | WakeUpOutcome:
    """The hotel record in ``raw`` (msgpack), or RecordError."""
    try:
        doc: Any = msgpack.unpackb(raw, raw=False)
    except MSGPACK_ERRORS as err:
        raise RecordError("record-not-msgpack", f"not msgpack: {err}") from None
    if type(doc) is not dict:
        raise RecordError("record-not-map", "a hotel record is a msgpack map")
    try:
        return _ADAPTER.validate_python(doc)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        error_id = _ERROR_IDS.get(first["type"], "record-bad-field")
        raise RecordError(error_id, f"{where}: {first['msg']}") from None
