"""CDR search and reports over the aggregator's store (no HTTP here).

Times are stored as UTC epoch milliseconds and rendered in the requested time zone.
Summaries read the hourly rollup maintained at ingest; each UTC hour is attributed to
the local day and hour its start falls in (exact for zones with whole-hour offsets), and
the database sums per site and period, so a summary costs what its answer holds (sites
times days or hours), never what the CDRs number. Totals per extension or trunk add up
whole UTC days from the daily rollup and only the hours at either end of the range from
the hourly one, in one SQL query.
"""

from __future__ import annotations

import base64
import datetime
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from aggregator.queues.report import utc_offsets
from aggregator.store.schema import cdr_rollup, cdr_rollup_daily, cdrs

CDR_COLUMNS = (
    "site_id",
    "cdr_id",
    "conversation_id",
    "direction",
    "caller_number",
    "caller_extension",
    "caller_name",
    "callee_number",
    "callee_extension",
    "callee_name",
    "trunk",
    "disposition",
    "duration_s",
    "billable_s",
    "hangup_cause",
    "hangup_side",
    "recording_id",
)


DAY_MS = 86_400_000
HOUR_MS = 3_600_000


class QueryError(ValueError):
    """A search or report parameter that cannot be used; ``error_id`` is stable."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id


@dataclass(frozen=True)
class CdrFilter:
    """What a CDR search asks for; ``sites`` None means every site."""

    sites: frozenset[str] | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    number: str | None = None
    extension: str | None = None
    disposition: str | None = None
    trunk: str | None = None


def zone(name: str) -> ZoneInfo:
    """The named IANA time zone, or QueryError."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        raise QueryError(
            "bad-time-zone", f"unknown time zone {name!r} (e.g. Europe/Berlin)"
        ) from None


def parse_time(text: str, tz: ZoneInfo) -> int:
    """A date (local midnight) or ISO-8601 time (local if no offset) as epoch ms."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise QueryError("bad-time", f"{text!r} is not a date or ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return int(moment.timestamp() * 1000)


def report_span(start_ms: int, end_ms: int, max_days: int) -> tuple[int, int]:
    """``(start_ms, end_ms)`` if it runs forward and covers at most ``max_days`` days."""
    if start_ms > end_ms:
        raise QueryError("report-span-reversed", "'from' is after 'to'; swap them")
    if end_ms - start_ms > max_days * DAY_MS:
        raise QueryError(
            "report-span-too-long",
            f"a report covers at most {max_days} days (reports.max_span_days); "
            "ask for several shorter ranges",
        )
    return start_ms, end_ms


def render_time(ms: int | None, tz: ZoneInfo) -> str | None:
    """Epoch ms as ISO-8601 in ``tz``; None when absent or past what a date can hold.

    Ingest refuses such times now, but rows stored before it did must still render.
    """
    local = local_time(ms, tz)
    return None if local is None else local.isoformat(timespec="milliseconds")


def local_time(ms: int | None, tz: ZoneInfo) -> datetime.datetime | None:
    """Epoch ms in ``tz``, or None when absent or out of the datetime range."""
    if ms is None:
        return None
    try:
        return datetime.datetime.fromtimestamp(ms / 1000, tz)
    except (OverflowError, ValueError, OSError):
        return None


def encode_cursor(started_ms: int, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{started_ms}:{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        started, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        return int(started), int(row_id)
    except ValueError:
        raise QueryError("bad-cursor", "cursor is not one this API returned") from None


def search_cdrs(
    conn: sa.Connection, flt: CdrFilter, tz: ZoneInfo, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of CDRs, newest first, and the cursor of the next page (None at the end)."""
    after: list[sa.ColumnElement[bool]] = []
    if cursor:
        started, row_id = decode_cursor(cursor)
        after.append(
            sa.or_(
                cdrs.c.started_ms < started,
                sa.and_(cdrs.c.started_ms == started, cdrs.c.id < row_id),
            )
        )
    rows = conn.execute(_page_query(flt, after, limit + 1)).all()
    page = [_render(row, tz) for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return page, encode_cursor(last.started_ms, last.id) if last is not None else None


def _page_query(flt: CdrFilter, after: list[sa.ColumnElement[bool]], size: int) -> sa.Select[Any]:
    newest = (cdrs.c.started_ms.desc(), cdrs.c.id.desc())
    if not flt.number:
        conditions = _conditions(flt, cdrs.c.site_id)
        return sa.select(cdrs).where(*conditions, *after).order_by(*newest).limit(size)
    # A number matches the caller or the callee: walk each side's (number, time) index
    # newest first and merge. Without statistics SQLite may prefer the (site, time) index
    # and scan a site's whole range, so the site test goes through "site_id || ''",
    # which no index serves.
    conditions = _conditions(flt, cdrs.c.site_id.concat(""))
    sides = [
        sa.select(cdrs)
        .where(column == flt.number, *conditions, *after)
        .order_by(*newest)
        .limit(size)
        .subquery()
        for column in (cdrs.c.caller_number, cdrs.c.callee_number)
    ]
    merged = sa.union(*(sa.select(side) for side in sides)).subquery()
    return sa.select(merged).order_by(merged.c.started_ms.desc(), merged.c.id.desc()).limit(size)


def _conditions(flt: CdrFilter, site: sa.ColumnElement[str]) -> list[sa.ColumnElement[bool]]:
    c = cdrs.c
    conditions: list[sa.ColumnElement[bool]] = []
    if flt.sites is not None:
        conditions.append(site.in_(sorted(flt.sites)))
    if flt.start_ms is not None:
        conditions.append(c.started_ms >= flt.start_ms)
    if flt.end_ms is not None:
        conditions.append(c.started_ms < flt.end_ms)
    if flt.extension:
        conditions.append(
            sa.or_(c.caller_extension == flt.extension, c.callee_extension == flt.extension)
        )
    if flt.disposition:
        conditions.append(c.disposition == flt.disposition)
    if flt.trunk:
        conditions.append(c.trunk == flt.trunk)
    return conditions


def _render(row: Any, tz: ZoneInfo) -> dict[str, Any]:
    out = {name: getattr(row, name) for name in CDR_COLUMNS}
    out["started_at"] = render_time(row.started_ms, tz)
    out["answered_at"] = render_time(row.answered_ms, tz)
    out["ended_at"] = render_time(row.ended_ms, tz)
    return out


def summary(
    conn: sa.Connection,
    sites: frozenset[str] | None,
    start_ms: int,
    end_ms: int,
    tz: ZoneInfo,
    group: str,
) -> list[dict[str, Any]]:
    """Calls, answered, ASR, ACD, minutes and busiest hour per site and day (or hour)."""
    if group == "day":
        return _summary_by_day(conn, sites, start_ms, end_ms, tz)
    labels = _HourLabels(tz)
    lines = []
    for site_id, hour_ms, *sums in conn.execute(_by_hour(sites, start_ms, end_ms)):
        period = labels.of(hour_ms)
        if period is not None:
            lines.append({"site_id": site_id, "period": period, **_figures(sums)})
    return sorted(lines, key=lambda line: (line["site_id"], line["period"]))


def _summary_by_day(
    conn: sa.Connection, sites: frozenset[str] | None, start_ms: int, end_ms: int, tz: ZoneInfo
) -> list[dict[str, Any]]:
    first = _first_local_day(start_ms, tz)
    if first is None:
        return []
    # Sorted by site and day number, which orders the days as their ISO dates do.
    query = _by_day(sites, start_ms, end_ms, tz, first)
    rows = sorted(conn.execute(query), key=lambda row: (row[0], row[1]))
    periods: dict[int, str] = {}
    lines = []
    for site_id, day, hour, *sums in rows:
        if day not in periods:
            periods[day] = (first + datetime.timedelta(days=day)).isoformat()
        line = {"site_id": site_id, "period": periods[day], **_figures(sums)}
        lines.append(line | {"busiest_hour": f"{hour:02d}:00"})
    return lines


def _by_hour(sites: frozenset[str] | None, start_ms: int, end_ms: int) -> sa.Select[Any]:
    """Sums per site and UTC hour of the hourly rollup's site rows."""
    r = cdr_rollup.c
    query = sa.select(r.site_id, r.hour_ms, *_sums(cdr_rollup))
    query = _site_rows(query, sites, start_ms, end_ms)
    return query.group_by(r.site_id, r.hour_ms)


def hour_of_day_calls(
    conn: sa.Connection, sites: frozenset[str] | None, start_ms: int, end_ms: int, tz: ZoneInfo
) -> list[int]:
    """Calls per local hour of the day (24 counts) over the range, every site in scope."""
    calls = [0] * 24
    first = _first_local_day(start_ms, tz)
    if first is None:
        return calls
    _, hour = _local_day_and_hour(start_ms, end_ms, tz, first)
    calls_sum = _sums(cdr_rollup)[0]
    query = _site_rows(sa.select(hour, calls_sum), sites, start_ms, end_ms)
    query = query.group_by(sa.literal_column("hour"))
    for row in conn.execute(query):
        calls[int(row[0])] = int(row[1])
    return calls


def _local_day_and_hour(
    start_ms: int, end_ms: int, tz: ZoneInfo, first: datetime.date
) -> tuple[sa.Label[int], sa.Label[int]]:
    """An hourly rollup row's local day (days since ``first``) and hour of that day.

    Each UTC hour is shifted by the zone's offset then (one ``CASE`` per change of offset
    in the range, ``utc_offsets``) and split into whole days since ``first``'s midnight and
    the hour of that day: plain arithmetic, so the database does the grouping.
    """
    r = cdr_rollup.c
    offsets = _offsets(start_ms, end_ms, tz)
    shift: sa.ColumnElement[int] = sa.literal(offsets[-1][1])
    for (_, offset), (changed, _) in reversed(list(itertools.pairwise(offsets))):
        shift = sa.case((r.hour_ms < changed, offset), else_=shift)
    base = int(datetime.datetime.combine(first, datetime.time(), datetime.UTC).timestamp() * 1000)
    local = r.hour_ms + shift - base
    return (local // DAY_MS).label("day"), (local % DAY_MS // HOUR_MS).label("hour")


def _by_day(
    sites: frozenset[str] | None,
    start_ms: int,
    end_ms: int,
    tz: ZoneInfo,
    first: datetime.date,
) -> sa.Select[Any]:
    """Sums per site and local day (days since ``first``), with the day's busiest local hour:
    the one with most calls, the earliest on a tie.

    The busiest hour comes out of the same ``GROUP BY`` as the sums: each hour of the day
    is ranked by ``calls * 32 + (31 - hour)``, whose largest value is the hour with most
    calls and, among equals, the earliest (a window function costs SQLite several times
    more here). A site has one rollup row per UTC hour, so each row is a local hour of its
    own unless the range holds a change back to an earlier offset (the end of daylight
    saving time), whose repeated local hour is first summed from its two rows.
    """
    r = cdr_rollup.c
    day, hour = _local_day_and_hour(start_ms, end_ms, tz, first)
    if _repeats_an_hour(_offsets(start_ms, end_ms, tz)):
        hours = sa.select(r.site_id, day, hour, *_sums(cdr_rollup))
        hours = _site_rows(hours, sites, start_ms, end_ms).group_by(
            r.site_id, sa.literal_column("day"), sa.literal_column("hour")
        )
    else:
        hours = sa.select(r.site_id, day, hour, *(r[name] for name in _SUMMED))
        hours = _site_rows(hours, sites, start_ms, end_ms)
    h = hours.subquery()
    rank = sa.func.max(h.c.calls * _RANK + (_RANK - 1 - h.c.hour))
    return sa.select(
        h.c.site_id,
        h.c.day,
        (_RANK - 1 - rank % _RANK).label("busiest"),
        *(sa.cast(sa.func.sum(h.c[name]), sa.BigInteger) for name in _COUNTED),
        *(sa.func.sum(h.c[name]) for name in ("duration_s", "billable_s")),
    ).group_by(h.c.site_id, h.c.day)


def _offsets(start_ms: int, end_ms: int, tz: ZoneInfo) -> list[tuple[int, int]]:
    """The zone's offsets from the first whole hour of the range (``utc_offsets``)."""
    return utc_offsets(-(-start_ms // HOUR_MS) * HOUR_MS, end_ms, tz)


def _repeats_an_hour(offsets: Sequence[tuple[int, int]]) -> bool:
    """Whether the offset ever goes back, so two UTC hours share a local hour."""
    return any(later < earlier for (_, earlier), (_, later) in itertools.pairwise(offsets))


def _sums(table: sa.Table) -> list[sa.Label[Any]]:
    # Counts summed as integers (PostgreSQL's sum of bigint is numeric, slow to read).
    counts = [sa.cast(sa.func.sum(table.c[n]), sa.BigInteger).label(n) for n in _COUNTED]
    return [*counts, *(sa.func.sum(table.c[n]).label(n) for n in ("duration_s", "billable_s"))]


def _site_rows(
    query: sa.Select[Any], sites: frozenset[str] | None, start_ms: int, end_ms: int
) -> sa.Select[Any]:
    r = cdr_rollup.c
    query = query.where(r.dim == "site", r.hour_ms >= start_ms, r.hour_ms < end_ms)
    return query if sites is None else query.where(r.site_id.in_(sorted(sites)))


def _first_local_day(start_ms: int, tz: ZoneInfo) -> datetime.date | None:
    local = local_time(-(-start_ms // HOUR_MS) * HOUR_MS, tz)
    return None if local is None else local.date()


class _HourLabels:
    """The local hour an hour's start falls in, worked out once per hour."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self._seen: dict[int, str | None] = {}

    def of(self, hour_ms: int) -> str | None:
        if hour_ms not in self._seen:
            local = local_time(hour_ms, self._tz)
            self._seen[hour_ms] = None if local is None else local.isoformat()
        return self._seen[hour_ms]


def by_key(
    conn: sa.Connection, dim: str, sites: frozenset[str] | None, start_ms: int, end_ms: int
) -> list[dict[str, Any]]:
    """Totals per site and extension (or trunk) over the range."""
    # Sums come back as the database's wide types (numeric on PostgreSQL), and sorted here
    # so the order does not depend on the database's collation.
    rows = sorted(conn.execute(_key_totals(dim, sites, start_ms, end_ms)).all())
    return [
        {"site_id": site_id, dim: key, **_figures([float(v) for v in sums])}
        for site_id, key, *sums in rows
    ]


def _key_totals(
    dim: str, sites: frozenset[str] | None, start_ms: int, end_ms: int
) -> sa.Select[Any]:
    """Sums per site and key: whole UTC days from the daily rollup, the rest by the hour."""
    first_day = -(-start_ms // DAY_MS) * DAY_MS
    last_day = end_ms // DAY_MS * DAY_MS
    if first_day >= last_day:
        parts = [_rollup_part(cdr_rollup, cdr_rollup.c.hour_ms, dim, sites, start_ms, end_ms)]
    else:
        hours = cdr_rollup.c.hour_ms
        parts = [
            _rollup_part(cdr_rollup_daily, cdr_rollup_daily.c.day_ms, dim, sites, first_day,
                         last_day),
            _rollup_part(cdr_rollup, hours, dim, sites, start_ms, first_day),
            _rollup_part(cdr_rollup, hours, dim, sites, last_day, end_ms),
        ]  # fmt: skip
    rows = sa.union_all(*parts).subquery()
    return sa.select(
        rows.c.site_id,
        rows.c.key,
        *(sa.func.sum(rows.c[name]) for name in _SUMMED),
    ).group_by(rows.c.site_id, rows.c.key)


_SUMMED = ("calls", "answered", "duration_s", "billable_s")
_COUNTED = ("calls", "answered")
_RANK = 32  # more than the hours a local day can hold (25)


def _rollup_part(
    table: sa.Table,
    period: sa.ColumnElement[int],
    dim: str,
    sites: frozenset[str] | None,
    start_ms: int,
    end_ms: int,
) -> sa.Select[Any]:
    query = sa.select(table.c.site_id, table.c.key, *(table.c[name] for name in _SUMMED))
    query = query.where(table.c.dim == dim, period >= start_ms, period < end_ms)
    if sites is not None:
        query = query.where(table.c.site_id.in_(sorted(sites)))
    return query


def _figures(totals: Sequence[Any]) -> Mapping[str, Any]:
    calls, answered, duration_s, billable_s = map(float, totals)
    return {
        "calls": int(calls),
        "answered": int(answered),
        "asr_percent": round(100 * answered / calls, 2) if calls else 0.0,
        "acd_s": round(billable_s / answered, 1) if answered else 0.0,
        "total_minutes": round(duration_s / 60, 2),
        "billable_minutes": round(billable_s / 60, 2),
    }
