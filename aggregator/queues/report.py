"""The queue report: per site, queue and local day (or hour), from the queue rollups only.

Theory of operation: the report's periods are local days or hours of the requested time
zone. When every period boundary is a UTC midnight (a day report in UTC, or any zone
at offset zero), the daily rollup answers, one row per site, queue and day; otherwise
the hourly one, each UTC hour counted in the local period its start falls in (exact for
zones with whole-hour offsets, as for the other reports). The database sums per site,
queue and period: a day report maps each hour to its period with one ``CASE`` over the
period boundaries, an hour report groups by the hour itself. Raw CDRs are never read.

Figures (docs/contact-centre.md, "Reports at HQ"): service level is the callers answered
within the queue's threshold, of those answered or abandoned (as on the wallboard); the
average speed of answer is the answered callers' mean wait; the average handle time
their mean talk time, from the agent's answer to the end of the call.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from aggregator.store.queue_rollup import OUTCOMES, SUMMED
from aggregator.store.schema import queue_rollup, queue_rollup_daily

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
Interval = Literal["day", "hour"]


@dataclass(frozen=True)
class QueueQuery:
    """What a queue report asks for; ``sites`` None means every site."""

    start_ms: int
    end_ms: int
    tz: ZoneInfo
    interval: Interval = "day"
    sites: frozenset[str] | None = None
    queue: str | None = None


def queue_report(conn: sa.Connection, query: QueueQuery) -> list[dict[str, Any]]:
    """Per site, queue and period: outcomes, service level, ASA, AHT and longest wait."""
    if query.interval == "day":
        bounds = day_bounds(query.start_ms, query.end_ms, query.tz)
        rows = conn.execute(_by_day(query, bounds)).all()
        labels = [_label(at, query.tz, "day") for at in bounds[:-1]]
        lines = [(site, queue, labels[p], sums) for site, queue, p, *sums in rows]
    else:
        rows = conn.execute(_by_hour(query)).all()
        lines = [(site, queue, _label(h, query.tz, "hour"), sums) for site, queue, h, *sums in rows]
    # Sorted here, not in SQL, so the order does not depend on the database's collation.
    return [_line(site, queue, period, sums) for site, queue, period, sums in sorted(lines)]


def day_bounds(start_ms: int, end_ms: int, tz: ZoneInfo) -> list[int]:
    """``start_ms``, each local midnight after it and before ``end_ms``, then ``end_ms``."""
    bounds = [start_ms]
    day = datetime.datetime.fromtimestamp(start_ms / 1000, tz).date()
    while True:
        day += datetime.timedelta(days=1)
        midnight = datetime.datetime.combine(day, datetime.time(), tz)
        at = int(midnight.timestamp() * 1000)
        if at >= end_ms:
            return [*bounds, end_ms]
        bounds.append(at)


def _by_day(query: QueueQuery, bounds: Sequence[int]) -> sa.Select[Any]:
    """Sums per site, queue and period index (the period's place in ``bounds``)."""
    if all(at % DAY_MS == 0 for at in bounds):
        table, at = queue_rollup_daily, queue_rollup_daily.c.day_ms
    else:
        table, at = queue_rollup, queue_rollup.c.hour_ms
    period = sa.case(*((at < bound, i) for i, bound in enumerate(bounds[1:])))
    return _sums(table, at, period, query)


def _by_hour(query: QueueQuery) -> sa.Select[Any]:
    return _sums(queue_rollup, queue_rollup.c.hour_ms, queue_rollup.c.hour_ms, query)


def _sums(
    table: sa.Table, at: sa.ColumnElement[int], period: sa.ColumnElement[int], query: QueueQuery
) -> sa.Select[Any]:
    c = table.c
    first = -(-query.start_ms // HOUR_MS) * HOUR_MS  # hours that start inside the range
    select = sa.select(
        c.site_id,
        c.queue,
        period.label("period"),
        *(sa.func.sum(c[name]) for name in SUMMED),
        sa.func.max(c.max_wait_s),
    ).where(at >= first, at < query.end_ms)
    if query.sites is not None:
        select = select.where(c.site_id.in_(sorted(query.sites)))
    if query.queue is not None:
        select = select.where(c.queue == query.queue)
    return select.group_by(c.site_id, c.queue, sa.literal_column("period"))


def _label(at_ms: int, tz: ZoneInfo, interval: Interval) -> str:
    local = datetime.datetime.fromtimestamp(at_ms / 1000, tz)
    if interval == "day":
        return local.date().isoformat()
    return local.replace(minute=0, second=0, microsecond=0).isoformat()


def _line(site_id: str, queue: str, period: str, sums: Sequence[Any]) -> dict[str, Any]:
    """A report line from the summed counters (``SUMMED`` then the longest wait)."""
    figures = dict(zip((*SUMMED, "max_wait_s"), (float(v or 0) for v in sums), strict=True))
    answered, abandoned = figures["answered"], figures["abandoned"]
    judged = answered + abandoned
    return {
        "site_id": site_id,
        "queue": queue,
        "period": period,
        "offered": int(figures["offered"]),
        **{outcome: int(figures[outcome]) for outcome in OUTCOMES},
        "answered_within_sl": int(figures["sl_met"]),
        "service_level_percent": round(100 * figures["sl_met"] / judged, 1) if judged else None,
        "asa_s": round(figures["wait_s"] / answered, 1) if answered else None,
        "aht_s": round(figures["talk_s"] / answered, 1) if answered else None,
        "longest_wait_s": round(figures["max_wait_s"], 1),
    }
