"""The answer-time distribution: per site, queue and local day (or hour), the answered
calls counted by how long they waited, from the queue rollups only.

The buckets are fixed (aggregator/store/queue_rollup.py, ``WAIT_BUCKETS``): each counts
the waits from its lower bound (inclusive) to the next bucket's (exclusive); the last is
open. Periods, time zones and the rollup read are the queue report's
(aggregator/queues/report.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from aggregator.queues.report import QueueQuery, period_sums
from aggregator.store.queue_rollup import BUCKET_COLUMNS, WAIT_BUCKETS

_COUNTED = ("answered", *BUCKET_COLUMNS)


def buckets() -> list[dict[str, Any]]:
    """The buckets: column, lower bound and upper bound in seconds (None: open)."""
    uppers = [low for _, low in WAIT_BUCKETS[1:]]
    return [
        {"column": name, "from_s": low, "to_s": high}
        for (name, low), high in zip(WAIT_BUCKETS, [*uppers, None], strict=True)
    ]


def answer_time_report(conn: sa.Connection, query: QueueQuery) -> list[dict[str, Any]]:
    """Per site, queue and period: calls answered, and how many in each wait bucket."""
    return [
        _line(site_id, queue, period, sums)
        for site_id, queue, period, sums in period_sums(conn, query, _figures)
    ]


def _figures(table: sa.Table, grouped: bool) -> list[sa.ColumnElement[Any]]:
    if not grouped:
        return [table.c[name] for name in _COUNTED]
    return [sa.cast(sa.func.sum(table.c[name]), sa.BigInteger) for name in _COUNTED]


def _line(site_id: str, queue: str, period: str, sums: Sequence[Any]) -> dict[str, Any]:
    counts = dict(zip(_COUNTED, map(int, sums), strict=True))
    return {"site_id": site_id, "queue": queue, "period": period, **counts}
