"""The lost-calls list: each queued call lost (abandoned, timeout, interrupted), whether
the caller was reached afterwards, and the callback it took.

Theory of operation: ingest keeps every queued call that was not answered in
``queue_unanswered`` (aggregator/store/queue_rollup.py) and every callback a caller took
in ``queue_callbacks`` (aggregator/store/queue_callbacks.py); the list pages through the
first in time order by its (start, site, CDR id) index. For each call on a page, the
database looks for what followed at the same site within the window after the call
started: the first answered CDR from or to the caller's number (through the CDRs' caller
and callee number indexes) that is not itself a queued call left unanswered, and the
first callback that number took. The callback's tries and status are reported as they
stand; it reached the caller only when a try was answered (then at that try's start). The
caller was reached when either reached it; ``reached_at`` is the earlier. A call without
the caller's number (anonymous) is never matched.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from aggregator.reports import QueryError, render_time
from aggregator.store.schema import cdrs, queue_callbacks, queue_unanswered

LOST = ("abandoned", "timeout", "interrupted")
# A callback's status in the list: as stored, except that tries still to come read "waiting".
CALLBACK_STATUS = {"": "waiting", "retry": "waiting", "answered": "answered", "failed": "failed"}


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
    rows = conn.execute(_with_callbacks(_page(query, limit + 1, _decode(cursor)))).all()
    page = [_line(row, query.tz) for row in rows[:limit]]
    if len(rows) <= limit:
        return page, None
    last = rows[limit - 1]
    return page, _encode(last.started_ms, last.site_id, last.cdr_id)


def _page(query: LostQuery, size: int, after: tuple[int, str, str] | None) -> sa.Select[Any]:
    u = queue_unanswered.c
    select = sa.select(
        u.site_id, u.cdr_id, u.started_ms, u.caller_number, u.queue, u.outcome, u.wait_s,
        u.callback_offered,
        _answered(cdrs.c.caller_number, query.window_ms).label("by_caller"),
        _answered(cdrs.c.callee_number, query.window_ms).label("by_callee"),
        _callback(query.window_ms).label("callback_call"),
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
    """The Call-ID of the first callback the lost caller's number took in the window."""
    u, b = queue_unanswered.c, queue_callbacks.c
    return (
        sa.select(b.call_id)
        .where(
            b.site_id == u.site_id,
            b.caller == u.caller_number,
            u.caller_number != "",
            b.started_ms > u.started_ms,
            b.started_ms <= u.started_ms + window_ms,
        )
        .order_by(b.started_ms, b.call_id)
        .limit(1)
        .scalar_subquery()
    )


def _with_callbacks(page: sa.Select[Any]) -> sa.Select[Any]:
    """The page's calls joined to their callbacks' tries and status, in the page's order."""
    p = page.subquery("page")
    b = queue_callbacks.c
    joined = p.outerjoin(
        queue_callbacks, sa.and_(b.site_id == p.c.site_id, b.call_id == p.c.callback_call)
    )
    return (
        sa.select(p, b.tries, b.status, b.answered_ms)
        .select_from(joined)
        .order_by(p.c.started_ms, p.c.site_id, p.c.cdr_id)
    )


def _line(row: Any, tz: ZoneInfo) -> dict[str, Any]:
    found = [
        (at, how)
        for at, how in ((row.by_caller, "call"), (row.by_callee, "call"),
                        (row.answered_ms, "callback"))
        if at is not None
    ]  # fmt: skip
    # An answered try is a call to the caller too: at the same time, it reads "callback".
    reached_at, reached_by = min(
        found, key=lambda f: (f[0], f[1] != "callback"), default=(None, None)
    )
    taken = row.callback_call is not None
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
        "callback_offered": bool(row.callback_offered),
        "callback_tries": (row.tries or 0) if taken else None,
        "callback_status": CALLBACK_STATUS[row.status or ""] if taken else None,
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
