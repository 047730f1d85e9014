"""SMS records at HQ: what the sites received and how their outgoing SMS ended.

A site sends each record once it is final (received, sent or failed) in an
``sms-batch``; storing is insert-or-ignore by (site, SMS id), so a batch repeated after
a lost ack changes nothing. A record that cannot be read is skipped with a warning (the
batch is still acknowledged: repeating it would not make it readable).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack
import sqlalchemy as sa

from aggregator.store.db import insert
from aggregator.store.schema import sms_messages

log = logging.getLogger(__name__)

DIRECTIONS = ("in", "out")


def store_sms(conn: sa.Connection, site_id: str, records: Iterable[tuple[int, bytes]]) -> int:
    """Keep a batch of SMS records (repeats ignored); returns how many were readable."""
    now = int(time.time() * 1000)
    rows = []
    for seq, raw in records:
        try:
            row = _row(site_id, msgpack.unpackb(raw, raw=False), now)
        except (ValueError, TypeError, msgpack.UnpackException) as err:
            row = None
            log.warning("unreadable SMS record skipped", extra={"site": site_id, "seq": seq,
                        "error": str(err)})  # fmt: skip
        if row is not None:
            rows.append(row)
    if rows:
        conn.execute(insert(conn.engine, sms_messages).on_conflict_do_nothing(), rows)
    return len(rows)


def _row(site_id: str, doc: Any, now: int) -> dict[str, Any] | None:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("id"), str):
        return None
    direction = doc.get("direction")
    if direction not in DIRECTIONS:
        return None
    refs = doc.get("refs")
    return {
        "site_id": site_id,
        "sms_id": doc["id"][:64],
        "direction": direction,
        "at_ms": int(float(doc.get("created") or 0) * 1000),
        "channel": _text(doc.get("channel"), 64),
        "iccid": _text(doc.get("iccid"), 32),
        "sim_number": _text(doc.get("sim_number"), 32),
        "number": _text(doc.get("from" if direction == "in" else "to"), 64),
        "text": _text(doc.get("text"), 4000),
        "parts": int(doc.get("parts") or 1),
        "status": _text(doc.get("status"), 16) or "unknown",
        "reason": _text(doc.get("reason"), 512),
        "refs": [r for r in refs if type(r) is int] if isinstance(refs, list) else None,
        "attempts": int(doc.get("attempts") or 0),
        "received_ms": now,
    }


def _text(value: Any, size: int) -> str:
    return "" if value is None else str(value)[:size]


def counts_by_sim(conn: sa.Connection, iccids: Iterable[str]) -> dict[str, dict[str, int]]:
    """Per ICCID: SMS received, sent and failed (all time)."""
    wanted = sorted(set(iccids))
    if not wanted:
        return {}
    query = (
        sa.select(sms_messages.c.iccid, sms_messages.c.status, sa.func.count())
        .where(sms_messages.c.iccid.in_(wanted))
        .group_by(sms_messages.c.iccid, sms_messages.c.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for iccid, status, count in conn.execute(query):
        counts.setdefault(iccid, {"received": 0, "sent": 0, "failed": 0})[status] = count
    return counts
