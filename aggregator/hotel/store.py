"""Hotel records at HQ: stored by (site, record id), so a batch sent again changes nothing.

A site sends each posting its PMS finally answered and each wake-up outcome once, in
``hotel-batch`` messages (``drivers/sync/hotel.py``). Each record is parsed alone; an
invalid one is refused with its ``error_id`` and the others are kept, and the batch is
acknowledged, since sending it again would not make that record valid.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa

from aggregator.store.db import insert
from aggregator.store.schema import hotel_postings, hotel_wake_ups
from drivers.sync.hotel import HotelPosting, WakeUpOutcome, parse_hotel_record
from drivers.sync.records import RecordError

# Told of each record refused: its sequence number and why.
OnRefused = Callable[[int, RecordError], None]


def store_hotel(
    conn: sa.Connection,
    site_id: str,
    records: Iterable[tuple[int, bytes]],
    refused: OnRefused,
) -> int:
    """Keep a batch of hotel records (repeats ignored); returns how many were valid."""
    now = int(time.time() * 1000)
    postings, wake_ups = [], []
    for seq, raw in records:
        try:
            record = parse_hotel_record(raw)
        except RecordError as err:
            refused(seq, err)
            continue
        if isinstance(record, HotelPosting):
            postings.append(_posting_row(site_id, record, now))
        else:
            wake_ups.append(_wake_up_row(site_id, record, now))
    for table, rows in ((hotel_postings, postings), (hotel_wake_ups, wake_ups)):
        if rows:
            conn.execute(insert(conn.engine, table).on_conflict_do_nothing(), rows)
    return len(postings) + len(wake_ups)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _posting_row(site_id: str, posting: HotelPosting, now: int) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "posting_id": posting.id,
        "room": posting.room,
        "posting_number": posting.posting_number,
        "posting_type": posting.posting_type,
        "amount": posting.amount,
        "duration_s": posting.duration_s,
        "dialled": posting.dialled,
        "article": posting.article,
        "quantity": posting.quantity,
        "fias_date": posting.date,
        "fias_time": posting.time,
        "answer": posting.answer,
        "answer_text": posting.answer_text,
        "queued_ms": _ms(posting.queued_at),
        "answered_ms": _ms(posting.answered_at),
        "business_date": posting.business_date,
        "received_ms": now,
    }


def _wake_up_row(site_id: str, outcome: WakeUpOutcome, now: int) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "outcome_id": outcome.id,
        "room": outcome.room,
        "fias_date": outcome.date,
        "fias_time": outcome.time,
        "due_ms": _ms(outcome.due_at),
        "result": outcome.result,
        "attempts": outcome.attempts,
        "front_desk_alerted": outcome.front_desk_alerted,
        "source": outcome.source,
        "ended_ms": _ms(outcome.ended_at),
        "received_ms": now,
    }
