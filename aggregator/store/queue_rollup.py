"""Per-queue rollups kept at ingest: what each queued call adds, per site, queue and hour.

A queued call's CDR carries its queue fields in ``variables`` (docs/contact-centre.md,
"CDR queue fields"); ``queue_call`` reads them into a ``QueueCall``. Like the other
rollups, the store adds only the calls of CDRs that were newly inserted, in the same
transaction as their rows, so a redelivered CDR adds nothing (aggregator/store/cdrs.py).
``queue_rollup`` holds the sums per UTC hour and ``queue_rollup_daily`` per UTC day;
HQ's queue report reads only these (aggregator/queues/report.py). ``agent_rollup`` holds
per agent (``queue_agent``) and hour the calls answered and their talk time, for the
agent report (aggregator/queues/agents.py). The queue rollups also count answered calls
by wait (``WAIT_BUCKETS``: the answer-time distribution), and ``queue_unanswered`` keeps
each queued call that was not answered, for the lost-calls list
(aggregator/queues/lost.py).

The fields are text a site wrote, so they are checked here: a queue name of at most
``ID_MAX`` characters, a known outcome and waits that are finite numbers of seconds
within ``DURATION_MAX_S``. A CDR whose queue fields fail is still stored; only its queue
figures are refused (``QueueFieldError``, reported by the caller with its ``error_id``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import sqlalchemy as sa

from aggregator.store.db import insert
from aggregator.store.schema import (
    ANSWER_TIME_COLUMNS,
    agent_rollup,
    queue_rollup,
    queue_rollup_daily,
    queue_unanswered,
)
from drivers.sync.limits import DURATION_MAX_S, ID_MAX, TIME_MAX_S, TIME_MIN_S
from drivers.sync.records import RecordError

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
OUTCOMES = ("answered", "abandoned", "overflowed", "timeout", "callback", "interrupted")
# Answer-time buckets (docs/contact-centre.md): an answered call's wait falls in the last
# bucket whose lower bound (seconds, inclusive) it reaches; each upper bound is exclusive.
BUCKET_COLUMNS = ANSWER_TIME_COLUMNS
WAIT_BUCKETS = tuple(zip(BUCKET_COLUMNS, (0.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0), strict=True))
# Outcomes of the queued calls kept one by one in ``queue_unanswered`` (the lost-calls list).
UNANSWERED = ("abandoned", "overflowed", "timeout", "callback", "interrupted")
# Counters summed per key, in this order, then the one maximum (``max_wait_s``).
SUMMED = (
    "offered",
    *OUTCOMES,
    "sl_met",
    "wait_s",
    "talk_s",
    *BUCKET_COLUMNS,
)
# What the tables held before revision 0008 added the answer-time buckets.
SUMMED_0004 = SUMMED[: -len(BUCKET_COLUMNS)]
COUNTERS = (*SUMMED, "max_wait_s")
_OUTCOME_INDEX = {outcome: 1 + i for i, outcome in enumerate(OUTCOMES)}
_SL_MET = len(OUTCOMES) + 1
_WAIT, _TALK = _SL_MET + 1, _SL_MET + 2
_BUCKET = _TALK + 1
_MAX_WAIT = len(SUMMED)
_INTEGERS = frozenset(("offered", *OUTCOMES, "sl_met", *BUCKET_COLUMNS))

# (site, hour or day start ms, queue) -> the COUNTERS, in order
QueueTotals = dict[tuple[str, int, str], list[float]]
# (site, hour start ms, agent) -> [calls answered, talk seconds]
AgentTotals = dict[tuple[str, int, str], list[float]]


class QueueFieldError(RecordError):
    """A CDR's queue fields are not valid; the CDR is kept, its queue figures are not."""


class QueueCall(NamedTuple):
    """What one queued call adds to its queue's hour."""

    site_id: str
    hour_ms: int
    queue: str
    outcome: str
    wait_s: float
    talk_s: float
    sl_met: bool
    agent: str = ""
    cdr_id: str = ""
    started_ms: int = 0
    caller: str = ""
    callback_offered: bool = False


def queue_call(
    site_id: str,
    started_ms: int,
    ended_ms: int | None,
    billable_s: float,
    variables: Mapping[str, str],
    cdr_id: str = "",
    caller: str = "",
) -> QueueCall | None:
    """The queue figures of a CDR (None when it did not pass a queue), or QueueFieldError."""
    queue = variables.get("queue")
    if queue is None:
        return None
    if not 0 < len(queue) <= ID_MAX:
        raise QueueFieldError("record-queue-fields-invalid", f"queue must be 1 to {ID_MAX} chars")
    outcome = variables.get("queue_outcome", "")
    if outcome not in _OUTCOME_INDEX:
        raise QueueFieldError(
            "record-queue-fields-invalid", f"queue_outcome must be one of {list(OUTCOMES)}"
        )
    entered = _seconds(variables, "queue_entered", TIME_MIN_S, TIME_MAX_S)
    wait = _seconds(variables, "queue_wait_s", 0.0, DURATION_MAX_S)
    end = None if ended_ms is None else ended_ms / 1000
    if wait is None:
        wait = max(0.0, end - entered) if end is not None and entered is not None else 0.0
    talk = 0.0
    if outcome == "answered":
        talk = billable_s - wait if end is None or entered is None else end - entered - wait
    hour = started_ms - started_ms % HOUR_MS
    sl_met = outcome == "answered" and variables.get("queue_sl_met") == "true"
    agent = variables.get("queue_agent", "") if outcome == "answered" else ""
    if len(agent) > ID_MAX:
        raise QueueFieldError("record-queue-fields-invalid", f"queue_agent is over {ID_MAX} chars")
    offered = variables.get("queue_callback_offered") == "true"
    return QueueCall(site_id, hour, queue, outcome, wait, max(0.0, talk), sl_met, agent, cdr_id,
                     started_ms, caller, offered)  # fmt: skip


def wait_bucket(wait_s: float) -> int:
    """The index in ``WAIT_BUCKETS`` of an answered call's wait."""
    return max(i for i, (_, low) in enumerate(WAIT_BUCKETS) if wait_s >= low)


def _seconds(variables: Mapping[str, str], key: str, low: float, high: float) -> float | None:
    text = variables.get(key)
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise QueueFieldError("record-queue-fields-invalid", f"{key} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise QueueFieldError("record-queue-fields-invalid", f"{key} must be within {low}..{high}")
    return value


def new_queue_totals() -> QueueTotals:
    """Empty totals that grow on first use of a key."""
    return defaultdict(lambda: [0.0] * len(COUNTERS))


def queue_totals(calls: Iterable[QueueCall]) -> QueueTotals:
    """What ``calls`` add to the hourly queue rollup."""
    totals = new_queue_totals()
    for call in calls:
        t = totals[(call.site_id, call.hour_ms, call.queue)]
        t[0] += 1
        t[_OUTCOME_INDEX[call.outcome]] += 1
        if call.outcome == "answered":
            t[_SL_MET] += call.sl_met
            t[_WAIT] += call.wait_s
            t[_TALK] += call.talk_s
            t[_BUCKET + wait_bucket(call.wait_s)] += 1
        t[_MAX_WAIT] = max(t[_MAX_WAIT], call.wait_s)
    return totals


def agent_totals(calls: Iterable[QueueCall]) -> AgentTotals:
    """What ``calls`` add to the hourly agent rollup: calls answered and talk time."""
    totals: AgentTotals = defaultdict(lambda: [0.0, 0.0])
    for call in calls:
        if call.agent:
            t = totals[(call.site_id, call.hour_ms, call.agent)]
            t[0] += 1
            t[1] += call.talk_s
    return totals


def daily_queue_totals(hourly: QueueTotals) -> QueueTotals:
    """Hourly totals merged per UTC day (the time in each key becomes the day's start)."""
    daily = new_queue_totals()
    for (site, hour, queue), t in hourly.items():
        _merge(daily[(site, hour - hour % DAY_MS, queue)], t)
    return daily


def answer_time_counts(t: list[float]) -> dict[str, int]:
    """The answer-time bucket counts of one key's counters, by column name."""
    return {name: int(t[_BUCKET + i]) for i, name in enumerate(BUCKET_COLUMNS)}


def _merge(into: list[float], t: list[float]) -> None:
    for i in range(len(SUMMED)):
        into[i] += t[i]
    into[_MAX_WAIT] = max(into[_MAX_WAIT], t[_MAX_WAIT])


def add_to_queue_rollup(
    conn: sa.Connection, calls: Sequence[QueueCall], summed: Sequence[str] = SUMMED
) -> None:
    """Add ``calls`` to the queue and agent rollups, inside ``conn``'s transaction.

    ``summed`` names the counters the tables have (revision 0004 passes ``SUMMED_0004``);
    the calls not answered are kept one by one only once their table exists.
    """
    if not calls:
        return
    hourly = queue_totals(calls)
    upsert_totals(conn, queue_rollup, "hour_ms", hourly, summed)
    upsert_totals(conn, queue_rollup_daily, "day_ms", daily_queue_totals(hourly), summed)
    if summed == SUMMED:
        add_unanswered(conn, calls)
    agents = [
        {"site_id": site, "hour_ms": hour, "agent": agent, "answered": int(t[0]), "talk_s": t[1]}
        for (site, hour, agent), t in agent_totals(calls).items()
    ]
    if agents:
        stmt = insert(conn.engine, agent_rollup)
        grown = {
            name: agent_rollup.c[name] + stmt.excluded[name] for name in ("answered", "talk_s")
        }
        stmt = stmt.on_conflict_do_update(
            index_elements=["site_id", "hour_ms", "agent"], set_=grown
        )
        conn.execute(stmt, agents)


def add_unanswered(conn: sa.Connection, calls: Iterable[QueueCall], offered: bool = True) -> None:
    """Keep each call not answered (its CDR newly stored) in ``queue_unanswered``
    (revision 0008, before the table had ``callback_offered``, passes ``offered`` False)."""
    rows = [
        {"site_id": c.site_id, "cdr_id": c.cdr_id, "started_ms": c.started_ms,
         "caller_number": c.caller, "queue": c.queue, "outcome": c.outcome, "wait_s": c.wait_s}
        | ({"callback_offered": c.callback_offered} if offered else {})
        for c in calls
        if c.outcome in UNANSWERED and c.cdr_id
    ]  # fmt: skip
    if rows:
        conn.execute(insert(conn.engine, queue_unanswered).on_conflict_do_nothing(), rows)


def _columns(t: list[float], summed: Sequence[str]) -> dict[str, float]:
    """The counters by column name; counts as integers, seconds as they are."""
    named = dict(zip(COUNTERS, t, strict=True))
    return {
        name: int(named[name]) if name in _INTEGERS else named[name]
        for name in (*summed, "max_wait_s")
    }


def upsert_totals(
    conn: sa.Connection,
    table: sa.Table,
    period: str,
    totals: QueueTotals,
    summed: Sequence[str] = SUMMED,
    zones: Mapping[str, str] | None = None,
) -> None:
    """Add ``totals`` to ``table``'s rows; ``zones`` (site to zone name) fills a ``tz`` key."""
    if not totals:
        return
    values: list[dict[str, object]] = [
        {"site_id": site, period: at, "queue": queue} | _columns(t, summed)
        for (site, at, queue), t in totals.items()
    ]
    keys = ["site_id", period, "queue"]
    if zones is not None:
        keys.append("tz")
        for (site, _, _), row in zip(totals, values, strict=True):
            row["tz"] = zones[site]
    stmt = insert(conn.engine, table)
    grown = {name: table.c[name] + stmt.excluded[name] for name in summed}
    longest = sa.case(
        (stmt.excluded.max_wait_s > table.c.max_wait_s, stmt.excluded.max_wait_s),
        else_=table.c.max_wait_s,
    )
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={**grown, "max_wait_s": longest})
    conn.execute(stmt, values)
