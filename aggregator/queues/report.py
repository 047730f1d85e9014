"""The queue report: per site, queue and local day (or hour), from the queue rollups only.

Theory of operation: the report's periods are local days or hours of the requested time
zone. A day report from one local midnight to another reads, for the sites whose own
zone (the directory's) is the requested one, their local-day rollup: one row per site,
queue and local day, complete from ``queue_sites.since_day``
(aggregator/store/queue_local.py; ``local_split``). For the other sites, a day report
over whole UTC days in a zone at offset zero (UTC) reads the daily rollup; otherwise the
hourly one, each UTC hour counted in the local period its start falls in (exact for
zones with whole-hour offsets, as for the other reports). The database sums per site,
queue and period: a day report from the hourly rollup works each row's local day out by
arithmetic (``_by_day``). Where a rollup's key already is the line's (a site's own local
days, whole UTC days from the daily rollup, hours from the hourly one) each row is a line
and is read as it is, without grouping: summing a few thousand groups of one row each
cost PostgreSQL more than reading them. Raw CDRs are never read.

Figures (docs/contact-centre.md, "Reports at HQ"): service level is the callers answered
within the queue's threshold, of those answered or abandoned (as on the wallboard); the
average speed of answer is the answered callers' mean wait; the average handle time
their mean talk time, from the agent's answer to the end of the call.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from aggregator.store.queue_local import NO_ZONE, day_number
from aggregator.store.queue_rollup import OUTCOMES
from aggregator.store.schema import (
    queue_rollup,
    queue_rollup_daily,
    queue_rollup_local,
    queue_sites,
)

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
Interval = Literal["day", "hour"]
COUNTS = ("offered", *OUTCOMES, "sl_met")
# The sums a report reads from a rollup table, after site, queue and period; with
# ``grouped`` False, the columns summed, read from one row per line.
Figures = Callable[[sa.Table, bool], list[sa.ColumnElement[Any]]]
# (site, queue, period label, the sums)
PeriodSums = tuple[str, str, str, Sequence[Any]]


@dataclass(frozen=True)
class QueueQuery:
    """What a queue report asks for; ``sites`` None means every site."""

    start_ms: int
    end_ms: int
    tz: ZoneInfo
    interval: Interval = "day"
    sites: frozenset[str] | None = None
    queue: str | None = None
    not_sites: frozenset[str] = frozenset()


def queue_report(conn: sa.Connection, query: QueueQuery) -> list[dict[str, Any]]:
    """Per site, queue and period: outcomes, service level, ASA, AHT and longest wait."""
    return [_line(*period) for period in period_sums(conn, query, queue_figures)]


def period_sums(conn: sa.Connection, query: QueueQuery, figures: Figures) -> list[PeriodSums]:
    """``figures`` summed per site, queue and period (labelled), sorted."""
    rows: list[Any] = []
    for select in statements(query, figures, local_split(conn, query)):
        rows += conn.execute(select).all()
    if query.interval == "day":
        first = _first_day(query)
        labels: Sequence[str] | dict[int, str] = [
            (first + datetime.timedelta(days=d)).isoformat() for d in range(_days(rows))
        ]
    else:
        labels = {h: _hour_label(h, query.tz) for h in {row[2] for row in rows}}
    # A row's sums are its slice after the period (thousands of rows: no unpacking).
    lines = [(row[0], row[1], labels[row[2]], row[3:]) for row in rows]
    # Sorted here, not in SQL, so the order does not depend on the database's collation.
    return sorted(lines)


def queue_figures(table: sa.Table, grouped: bool = True) -> list[sa.ColumnElement[Any]]:
    """The queue report's sums: ``COUNTS``, wait and talk seconds, the longest wait."""
    c = table.c
    if not grouped:
        return [*(c[name] for name in COUNTS), c.wait_s, c.talk_s, c.max_wait_s]
    return [
        # Counts summed as integers (PostgreSQL's sum of bigint is numeric, slow to read).
        *(sa.cast(sa.func.sum(c[name]), sa.BigInteger) for name in COUNTS),
        *(sa.func.sum(c[name]) for name in ("wait_s", "talk_s")),
        sa.func.max(c.max_wait_s),
    ]


@dataclass(frozen=True)
class Split:
    """The sites of a day report read from their own local-day rows, and the others."""

    local: frozenset[str]
    others: frozenset[str]


def statements(
    query: QueueQuery, figures: Figures = queue_figures, split: Split | None = None
) -> list[sa.Select[Any]]:
    """The report's SQL: with a ``split``, its local sites' days from their own rollup and
    its other sites' from the UTC rollups; without, every site from the UTC rollups."""
    if split is None:
        return [statement(query, figures)]
    own = _by_own_day(replace(query, sites=split.local, not_sites=frozenset()), figures)
    if not split.others:
        return [own]
    return [own, statement(replace(query, sites=split.others, not_sites=frozenset()), figures)]


def statement(query: QueueQuery, figures: Figures = queue_figures) -> sa.Select[Any]:
    """The SQL over the UTC rollups: sums per site, queue and period (a day's number, or
    the hour)."""
    if query.interval == "day":
        return _by_day(query, _first_day(query), figures)
    return _by_hour(query, figures)


def local_split(conn: sa.Connection, query: QueueQuery) -> Split | None:
    """Which sites of a day report have their own zone in the query's and local-day rows
    complete over its days (aggregator/store/queue_local.py); None when none has, or the
    query does not run from a local midnight to another.

    ``queue_sites`` lists every site with queued calls, so the others are listed too: the
    UTC rollups are then read for them by name, not by scanning past the local sites."""
    whole_days = _midnight(query.start_ms, query.tz) and _midnight(query.end_ms, query.tz)
    if query.interval != "day" or query.tz.key == NO_ZONE or not whole_days:
        return None
    q = queue_sites.c
    first = day_number(_first_day(query))
    rows = conn.execute(_among_sites(sa.select(q.site_id, q.tz, q.since_day), q.site_id, query))
    zones = {site: (tz, since) for site, tz, since in rows}
    own = [site for site, (tz, since) in zones.items() if tz == query.tz.key and since <= first]
    local = frozenset(own)
    return Split(local, frozenset(zones) - local) if local else None


def _midnight(at_ms: int, tz: ZoneInfo) -> bool:
    return datetime.datetime.fromtimestamp(at_ms / 1000, tz).time() == datetime.time()


def _by_own_day(query: QueueQuery, figures: Figures) -> sa.Select[Any]:
    """Sums per site, queue and local day (days since the first) from the sites' own rows."""
    c = queue_rollup_local.c
    first = day_number(_first_day(query))
    last = day_number(datetime.datetime.fromtimestamp(query.end_ms / 1000, query.tz).date())
    bounds = [c.tz == query.tz.key, c.day >= first, c.day < last]
    return _sums(queue_rollup_local, bounds, c.day - first, query, figures, grouped=False)


def _first_day(query: QueueQuery) -> datetime.date:
    return datetime.datetime.fromtimestamp(query.start_ms / 1000, query.tz).date()


def _by_day(query: QueueQuery, first: datetime.date, figures: Figures) -> sa.Select[Any]:
    """Sums per site, queue and local day (days since ``first``).

    An hour's local day is its start plus the zone's UTC offset then, in whole days since
    ``first``'s midnight, both taken as if they were UTC: plain arithmetic in SQL, with
    one ``CASE`` per change of offset (daylight saving) in the range.
    """
    offsets = utc_offsets(_first_hour(query.start_ms), query.end_ms, query.tz)
    whole_days = query.start_ms % DAY_MS == 0 and query.end_ms % DAY_MS == 0
    daily = whole_days and offsets == [(_first_hour(query.start_ms), 0)]
    if daily:
        table, at = queue_rollup_daily, queue_rollup_daily.c.day_ms
    else:
        table, at = queue_rollup, queue_rollup.c.hour_ms
    shift: sa.ColumnElement[int] = sa.literal(offsets[-1][1])
    for (_, offset), (changed, _) in reversed(list(itertools.pairwise(offsets))):
        shift = sa.case((at < changed, offset), else_=shift)
    base = int(datetime.datetime.combine(first, datetime.time(), datetime.UTC).timestamp() * 1000)
    period = (at + shift - base) // DAY_MS
    return _sums(table, _hours(at, query), period, query, figures, grouped=not daily)


def utc_offsets(start_ms: int, end_ms: int, tz: ZoneInfo) -> list[tuple[int, int]]:
    """``(from_ms, offset_ms)``: the zone's UTC offset at each whole hour from ``start_ms``
    (an hour's start), listed where it changes. Looked at once a day, and hour by hour
    only in a day whose end differs from its start (a daylight-saving change)."""
    offsets = [(start_ms, _offset(start_ms, tz))]
    for day in range(start_ms, end_ms, DAY_MS):
        if _offset(min(day + DAY_MS, end_ms), tz) == offsets[-1][1]:
            continue
        for hour in range(day + HOUR_MS, min(day + DAY_MS, end_ms) + 1, HOUR_MS):
            offset = _offset(hour, tz)
            if offset != offsets[-1][1]:
                offsets.append((hour, offset))
    return offsets


def _offset(at_ms: int, tz: ZoneInfo) -> int:
    moment = datetime.datetime.fromtimestamp(at_ms / 1000, tz)
    return int(moment.utcoffset().total_seconds() * 1000)  # type: ignore[union-attr]


def _first_hour(start_ms: int) -> int:
    """The first hour that starts inside a range starting at ``start_ms``."""
    return -(-start_ms // HOUR_MS) * HOUR_MS


def _days(rows: Sequence[Any]) -> int:
    return max((row[2] for row in rows), default=-1) + 1


def _by_hour(query: QueueQuery, figures: Figures) -> sa.Select[Any]:
    hour = queue_rollup.c.hour_ms
    return _sums(queue_rollup, _hours(hour, query), hour, query, figures, grouped=False)


def _hours(at: sa.ColumnElement[int], query: QueueQuery) -> list[sa.ColumnElement[bool]]:
    """The rows of the hours (or UTC days) that start inside the query's range."""
    return [at >= _first_hour(query.start_ms), at < query.end_ms]


def _sums(
    table: sa.Table,
    bounds: list[sa.ColumnElement[bool]],
    period: sa.ColumnElement[int],
    query: QueueQuery,
    figures: Figures,
    grouped: bool = True,
) -> sa.Select[Any]:
    """Per site, queue and period; ``grouped`` False when the table's key is (site,
    period, queue) within ``bounds``, so each row is a line of its own."""
    c = table.c
    select = sa.select(c.site_id, c.queue, period.label("period"), *figures(table, grouped))
    select = _among_sites(select.where(*bounds), c.site_id, query)
    if query.queue is not None:
        select = select.where(c.queue == query.queue)
    if not grouped:
        return select
    return select.group_by(c.site_id, c.queue, sa.literal_column("period"))


def _among_sites(
    select: sa.Select[Any], site_id: sa.ColumnElement[str], query: QueueQuery
) -> sa.Select[Any]:
    if query.sites is not None:
        select = select.where(site_id.in_(sorted(query.sites)))
    if query.not_sites:
        select = select.where(site_id.not_in(sorted(query.not_sites)))
    return select


def _hour_label(at_ms: int, tz: ZoneInfo) -> str:
    local = datetime.datetime.fromtimestamp(at_ms / 1000, tz)
    return local.replace(minute=0, second=0, microsecond=0).isoformat()


def _line(site_id: str, queue: str, period: str, sums: Sequence[Any]) -> dict[str, Any]:
    """A report line from the sums: ``COUNTS``, wait and talk seconds, the longest wait."""
    offered, answered, abandoned, overflowed, timeout, callback, interrupted, met = sums[:8]
    wait_s, talk_s, longest = float(sums[8]), float(sums[9]), float(sums[10])
    judged = answered + abandoned
    return {
        "site_id": site_id,
        "queue": queue,
        "period": period,
        "offered": offered,
        "answered": answered,
        "abandoned": abandoned,
        "overflowed": overflowed,
        "timeout": timeout,
        "callback": callback,
        "interrupted": interrupted,
        "lost": abandoned + timeout + interrupted,
        "answered_within_sl": met,
        "service_level_percent": round(100 * met / judged, 1) if judged else None,
        "asa_s": round(wait_s / answered, 1) if answered else None,
        "aht_s": round(talk_s / answered, 1) if answered else None,
        "longest_wait_s": round(longest, 1),
    }
