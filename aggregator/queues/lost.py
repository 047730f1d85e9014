"""The lost-calls list: each queued call lost (abandoned, timeout, interrupted) and whether
the caller was reached afterwards.

Theory of operation: ingest keeps every queued call that was not answered in
``queue_unanswered`` (aggregator/store/queue_rollup.py); the list pages through it in
time order by its (start, site, CDR id) index. For each call on a page, the database looks
for what followed at the same site within the window after the call started: the first
answered CDR from or to the caller's number (through the CDRs' caller and callee number
indexes) that is not itself a queued call left unanswered, and the first queued call of
that number that ended with a ``callback`` (the caller took a callback offer). The caller
was reached when either exists; ``reached_at`` is the earlier. A call without the
caller's number (anonymous) is never matched.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from aggregator.reports import QueryError, render_time
from aggregator.store.schema import cdrs, queue_unanswered

LOST = ("abandoned", "timeout", "interrupted")


@dataclass(frozen=True)
class LostQuery:
    """What a lost-calls list asks for; ``sites`` None means every site."""

    start_ms: int
    end_ms: int
    tz: ZoneInfo
    window_ms: int
    sites: frozenset[str] | None = None
    queue: str | None = None


def lost_calls(
    conn: sa.Connection, query: LostQuery, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of lost calls, oldest first, and the next page's cursor (None at the end)."""
    rows = conn.execute(_page(query, limit + 1, _decode(cursor))).all()
    page = [_line(row, query.tz) for row in rows[:limit]]
    if len(rows) <= limit:
        return page, None
    last = rows[limit - 1]
    return page, _encode(last.started_ms, last.site_id, last.cdr_id)


def _page(query: LostQuery, size: int, after: tuple[int, str, str] | None) -> sa.Select[Any]:
    u = queue_unanswered.c
    select = sa.select(
        u.site_id, u.cdr_id, u.started_ms, u.caller_number, u.queue, u.outcome, u.wait_s,
        _answered(cdrs.c.caller_number, query.window_ms).label("by_caller"),
        _answered(cdrs.c.callee_number, query.window_ms).label("by_callee"),
        _callback(query.window_ms).label("by_callback"),
    ).where(u.outcome.in_(LOST), u.started_ms >= query.start_ms)  # fmt: skip
    select = select.where(u.started_ms < query.end_ms)
    if query.sites is not None:
        select = select.where(u.site_id.in_(sorted(query.sites)))
    if query.queue is not None:
        select = select.where(u.queue == query.queue)
    if after is not None:
        select = select.where(sa.tuple_(u.started_ms, u.site_id, u.cdr_id) > sa.tuple_(*after))
    return select.order_by(u.started_ms, u.site_id, u.cdr_id).limit(size)


def _answered(number: sa.ColumnElement[str], window_ms: int) -> sa.ScalarSelect[Any]:
    """The first answered CDR with the lost caller's number on one side, in the window."""
    u, c = queue_unanswered.c, cdrs.c
    left = sa.alias(queue_unanswered, "left_unanswered")
    not_lost = ~sa.exists().where(left.c.site_id == c.site_id, left.c.cdr_id == c.cdr_id)
    return (
        sa.select(sa.func.min(c.started_ms))
        .where(
            number == u.caller_number,
            u.caller_number != "",
            c.site_id == u.site_id,
            c.started_ms > u.started_ms,
            c.started_ms <= u.started_ms + window_ms,
            c.disposition == "answered",
            not_lost,
        )
        .scalar_subquery()
    )


def _callback(window_ms: int) -> sa.ScalarSelect[Any]:
    """The first queued call of the lost caller's number that ended with a callback."""
    u = queue_unanswered.c
    later = sa.alias(queue_unanswered, "later").c
    return (
        sa.select(sa.func.min(later.started_ms))
        .where(
            later.site_id == u.site_id,
            later.caller_number == u.caller_number,
            u.caller_number != "",
            later.outcome == "callback",
            later.started_ms > u.started_ms,
            later.started_ms <= u.started_ms + window_ms,
        )
        .scalar_subquery()
    )


def _line(row: Any, tz: ZoneInfo) -> dict[str, Any]:
    found = [
        (at, how)
        for at, how in ((row.by_caller, "call"), (row.by_callee, "call"),
                        (row.by_callback, "callback"))
        if at is not None
    ]  # fmt: skip
    reached_at, reached_by = min(found) if found else (None, None)
    return {
        "site_id": row.site_id,
        "cdr_id": row.cdr_id,
        "time": render_time(row.started_ms, tz),
        "caller": row.caller_number,
        "queue": row.queue,
        "wait_s": round(float(row.wait_s), 1),
        "outcome": row.outcome,
        "reached": reached_at is not None,
        "reached_at": render_time(reached_at, tz),
        "reached_by": reached_by,
    }


def _encode(started_ms: int, site_id: str, cdr_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([started_ms, site_id, cdr_id]).encode()).decode()


def _decode(cursor: str | None) -> tuple[int, str, str] | None:
    if not cursor:
        return None
    try:
        started_ms, site_id, cdr_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        raise QueryError("bad-cursor", "cursor is not one this API returned") from None
    if not (isinstance(started_ms, int) and isinstance(site_id, str) and isinstance(cdr_id, str)):
        raise QueryError("bad-cursor", "cursor is not one this API returned")
    return started_ms, site_id, cdr_id
