"""The reports page's queue tables: the answer-time distribution per site, queue and day,
and the first lost calls with their callback status (docs/contact-centre.md)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from aggregator.queues.answer_times import answer_time_report, buckets
from aggregator.queues.lost import LostQuery, lost_calls
from aggregator.queues.report import QueueQuery

LOST_SHOWN = 50
CALLBACK_WINDOW_MS = 3_600_000


def queue_tables(
    conn: sa.Connection, sites: frozenset[str] | None, span: tuple[int, int], tz: ZoneInfo
) -> dict[str, Any]:
    """``answer_times`` rows, their ``buckets`` (with labels), and ``lost`` calls."""
    times = answer_time_report(conn, QueueQuery(*span, tz, "day", sites))
    lost, more = lost_calls(conn, LostQuery(*span, tz, CALLBACK_WINDOW_MS, sites), LOST_SHOWN, None)
    labelled = [
        b | {"label": f"{b['from_s']:g}-{b['to_s']:g}" if b["to_s"] else f"{b['from_s']:g}+"}
        for b in buckets()
    ]
    return {"answer_times": times, "buckets": labelled, "lost": lost, "lost_more": more is not None}
