"""What HQ hears of the hotel: finally answered postings and wake-up outcomes.

Each is appended to the ``hotel`` outbox inside the LMDB transaction that ends it (the
commit deleting an answered posting, the commit finishing a wake-up), so it is reported
exactly once whatever crashes when; the sync client sends the outbox up as ``hotel-batch``
messages and deletes what HQ acknowledged after its commit. The records are the typed ones
of ``drivers/sync/hotel.py``; one that our own data cannot make valid (a posting queued
through the API with odd fields, say) is logged with ``error_id`` ``hotel-report-invalid``
and left out, never allowed to fail the commit it rides in.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from appliance.hotel.postings import PostingOutcome
from appliance.hotel.wakeups import WakeUp, WakeUpTimeError, due_at
from appliance.store import Outbox, Store
from drivers.sync.hotel import HotelPosting, WakeUpOutcome, pack_hotel_record
from drivers.sync.protocol import HotelBatch
from drivers.sync.session import BatchStream

log = logging.getLogger(__name__)

OUTBOX = "hotel"
_T = TypeVar("_T")
STREAM = BatchStream(OUTBOX, HotelBatch)


def posting_record(outcome: PostingOutcome) -> HotelPosting:
    """The HQ record of a finally answered posting (raises ValidationError when invalid)."""
    posting, fields = outcome.posting, dict(outcome.posting.fields)
    queued_at = posting.queued_at or outcome.answered_at
    return HotelPosting.model_validate(
        {
            "id": f"P{outcome.number}-{int(queued_at * 1000)}",
            "room": posting.room,
            "posting_number": outcome.number,
            "posting_type": fields.get("PT", ""),
            "amount": _integer(fields.get("TA")),
            "duration_s": _duration(fields.get("DU")),
            "dialled": "".join(c for c in fields.get("DD", "") if c.isdigit())[:20],
            "article": fields.get("MA", "")[:16],
            "quantity": _integer(fields.get("M#")),
            "date": _digits(fields.get("DA"), (6,)),
            "time": _digits(fields.get("TI"), (4, 6)),
            "answer": outcome.status,
            "answer_text": outcome.text[:256],
            "queued_at": float(queued_at),
            "answered_at": float(outcome.answered_at),
            "business_date": posting.business_date,
        }
    )


def wake_up_record(
    wake_up: WakeUp, result: str, front_desk: bool, ended_at: float, zone: dt.tzinfo
) -> WakeUpOutcome:
    """The HQ record of a finished wake-up (raises ValidationError when invalid).

    Its due time is the one asked for (``DA``/``TI`` in the site's zone), not a retry's.
    """
    try:
        due: float | None = due_at(wake_up.date, wake_up.time, zone)
    except WakeUpTimeError:
        due = None
    return WakeUpOutcome.model_validate(
        {
            "id": f"wake-{uuid.uuid4().hex}",
            "room": wake_up.room,
            "date": _digits(wake_up.date, (6,)),
            "time": _digits(wake_up.time, (4, 6)),
            "due_at": due,
            "result": result,
            "attempts": wake_up.attempts,
            "front_desk_alerted": front_desk,
            "source": wake_up.source,
            "ended_at": float(ended_at),
        }
    )


class HqReports:
    """Appends hotel records to the ``hotel`` outbox inside the caller's write transaction.

    The outbox's sub-database must be open before (the store component opens every outbox
    of ``OUTBOXES`` at start): LMDB cannot create one inside a write transaction.
    """

    def __init__(self, store: Callable[[], Store], timezone: str) -> None:
        self._store = store
        self._zone = zoneinfo.ZoneInfo(timezone)

    def postings(self, txn: Any, outcomes: Sequence[PostingOutcome]) -> None:
        """Report finally answered postings (``PostingQueue``'s ``reports``)."""
        self._append(txn, [_packed(posting_record, outcome) for outcome in outcomes])

    def wake_up(
        self, txn: Any, wake_up: WakeUp, result: str, front_desk: bool, ended_at: float
    ) -> None:
        """Report a finished wake-up (``WakeUpBook``'s ``reports``)."""
        record = _packed(
            lambda w: wake_up_record(w, result, front_desk, ended_at, self._zone), wake_up
        )
        self._append(txn, [record])

    def _append(self, txn: Any, records: Sequence[bytes | None]) -> None:
        packed = [record for record in records if record is not None]
        if packed:
            Outbox(self._store(), OUTBOX).append_in(txn, packed)


def _packed(build: Callable[[_T], HotelPosting | WakeUpOutcome], item: _T) -> bytes | None:
    try:
        return pack_hotel_record(build(item))
    except ValidationError as err:
        log.error("hotel record for HQ not built: %s", err.errors(include_url=False)[0],
                  extra={"error_id": "hotel-report-invalid"})  # fmt: skip
        return None


def _integer(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.lstrip("-").isdigit() else None


def _duration(value: str | None) -> int | None:
    """FIAS ``DU`` (HHMMSS) in seconds."""
    text = value or ""
    if len(text) != 6 or not text.isdigit():
        return None
    return int(text[:2]) * 3600 + int(text[2:4]) * 60 + int(text[4:])


def _digits(value: str | None, lengths: tuple[int, ...]) -> str:
    text = value or ""
    return text if len(text) in lengths and text.isdigit() else ""
