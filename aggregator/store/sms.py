"""SMS records at HQ: what the sites received and how their outgoing SMS ended.

A site sends each record once it is final (received, sent or failed) in an
``sms-batch``; storing is insert-or-ignore by (site, SMS id), so a batch repeated after
a lost ack changes nothing. A record that is not a valid ``Sms`` (drivers/sync/records.py)
is refused alone and reported; the batch is still acknowledged, since repeating it would
not make that record valid.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa

from aggregator.store.db import insert
from aggregator.store.schema import sms_messages
from drivers.sync.records import RecordError, Sms, parse_sms

log = logging.getLogger(__name__)

# Told of each record refused: its sequence number and why.
OnRefused = Callable[[int, RecordError], None]


def store_sms(
    conn: sa.Connection,
    site_id: str,
    records: Iterable[tuple[int, bytes]],
    refused: OnRefused | None = None,
) -> int:
    """Keep a batch of SMS records (repeats ignored); returns how many were valid.

    An invalid record is handed to ``refused`` (or logged) and the others are kept.
    """
    now = int(time.time() * 1000)
    rows = []
    for seq, raw in records:
        try:
            rows.append(_row(site_id, parse_sms(raw), now))
        except RecordError as err:
            if refused is None:
                log.warning("invalid SMS record refused", extra={"site": site_id, "seq": seq,
                            "error_id": err.error_id, "error": err.message})  # fmt: skip
            else:
                refused(seq, err)
    if rows:
        conn.execute(insert(conn.engine, sms_messages).on_conflict_do_nothing(), rows)
    return len(rows)


def _row(site_id: str, sms: Sms, now: int) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "sms_id": sms.sms_id,
        "direction": sms.direction,
        "at_ms": int((sms.created or 0) * 1000),
        "channel": sms.channel,
        "iccid": sms.iccid,
        "sim_number": sms.sim_number,
        "number": sms.number,
        "text": sms.text,
        "parts": sms.parts,
        "status": sms.status,
        "reason": sms.reason,
        "refs": None if sms.refs is None else list(sms.refs),
        "attempts": sms.attempts,
        "received_ms": now,
    }
