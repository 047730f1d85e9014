"""Callbacks kept at ingest: each caller who took a callback offer, its tries and how it ended.

Two kinds of CDR tell a callback's story (docs/contact-centre.md, "Callback retries"):
the queued call the caller left by pressing 1 (``queue_outcome`` ``callback``: its
Call-ID, the caller's number, when) and one CDR per call back to the caller, carrying
``callback_of`` (that Call-ID), ``callback_try`` (1 = the first) and ``callback_status``
(``answered``, ``retry``, ``failed``). Both add to one ``queue_callbacks`` row per site
and Call-ID, whichever arrives first; a row keeps the highest try and its status, and
when the caller answered, the start of that try. The lost-calls list reads these rows
(aggregator/queues/lost.py). As for the rollups, only newly stored CDRs add, so a
redelivered CDR adds nothing. The fields are text a site wrote: a bad one in a call
back's CDR refuses its callback figures (``record-callback-fields-invalid``, counted as
the refused queue fields are) while the CDR is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import sqlalchemy as sa

from aggregator.store.db import insert
from aggregator.store.queue_rollup import QueueFieldError
from aggregator.store.schema import queue_callbacks

STATUSES = ("answered", "retry", "failed")
TRIES_MAX = 100
CALL_ID_MAX = 256


class CallbackRecord(NamedTuple):
    """What one CDR adds to its callback's row (zero and empty: what it does not know)."""

    site_id: str
    call_id: str
    caller: str = ""
    started_ms: int = 0
    tries: int = 0
    status: str = ""
    answered_ms: int | None = None


def callback_record(
    site_id: str, call_id: str, caller: str, started_ms: int, variables: Mapping[str, str]
) -> CallbackRecord | None:
    """The callback figures of a CDR (None: it is no part of a callback), or QueueFieldError."""
    if variables.get("queue_outcome") == "callback" and variables.get("queue"):
        # Without its Call-ID no call back can name it: its queue figures still count.
        if not 0 < len(call_id) <= CALL_ID_MAX:
            return None
        return CallbackRecord(site_id, call_id, caller, started_ms)
    of = variables.get("callback_of")
    if of is None:
        return None
    if not 0 < len(of) <= CALL_ID_MAX:
        raise _invalid(f"callback_of must be 1 to {CALL_ID_MAX} chars")
    status = variables.get("callback_status", "")
    if status not in STATUSES:
        raise _invalid(f"callback_status must be one of {list(STATUSES)}")
    text = variables.get("callback_try", "")
    if not (text.isascii() and text.isdigit() and 0 < int(text) <= TRIES_MAX):
        raise _invalid(f"callback_try must be a whole number from 1 to {TRIES_MAX}")
    answered = started_ms if status == "answered" else None
    return CallbackRecord(site_id, of, tries=int(text), status=status, answered_ms=answered)


def _invalid(message: str) -> QueueFieldError:
    return QueueFieldError("record-callback-fields-invalid", message)


def fold(records: Iterable[CallbackRecord]) -> list[CallbackRecord]:
    """One record per callback: what several CDRs of one batch add, merged."""
    merged: dict[tuple[str, str], CallbackRecord] = {}
    for record in records:
        key = (record.site_id, record.call_id)
        seen = merged.get(key)
        merged[key] = record if seen is None else _merge(seen, record)
    return list(merged.values())


def _merge(a: CallbackRecord, b: CallbackRecord) -> CallbackRecord:
    last = b if b.tries > a.tries else a
    return CallbackRecord(
        a.site_id,
        a.call_id,
        a.caller or b.caller,
        a.started_ms or b.started_ms,
        last.tries,
        last.status,
        a.answered_ms if a.answered_ms is not None else b.answered_ms,
    )


def add_callbacks(conn: sa.Connection, records: Iterable[CallbackRecord]) -> None:
    """Add the records to ``queue_callbacks``, inside ``conn``'s transaction."""
    rows = [r._asdict() for r in fold(records)]
    if not rows:
        return
    stmt = insert(conn.engine, queue_callbacks)
    t, new = queue_callbacks.c, stmt.excluded
    later = new.tries > t.tries
    stmt = stmt.on_conflict_do_update(
        index_elements=["site_id", "call_id"],
        set_={
            "caller": sa.case((t.caller == "", new.caller), else_=t.caller),
            "started_ms": sa.case((t.started_ms == 0, new.started_ms), else_=t.started_ms),
            "tries": sa.case((later, new.tries), else_=t.tries),
            "status": sa.case((later, new.status), else_=t.status),
            "answered_ms": sa.func.coalesce(t.answered_ms, new.answered_ms),
        },
    )
    conn.execute(stmt, rows)
