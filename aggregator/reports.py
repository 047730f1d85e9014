"""CDR search and reports over the aggregator's store (no HTTP here).

Times are stored as UTC epoch milliseconds and rendered in the requested time zone.
Summaries read the hourly rollup maintained at ingest; each UTC hour is attributed to
the local day and hour its start falls in (exact for zones with whole-hour offsets).
Totals per extension or trunk add up whole UTC days from the daily rollup and only the
hours at either end of the range from the hourly one, in one SQL query.
"""

from __future__ import annotations

import base64
import datetime
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

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


def _rollup_rows(
    conn: sa.Connection, dim: str, sites: frozenset[str] | None, start_ms: int, end_ms: int
) -> Iterable[Any]:
    r = cdr_rollup.c
    query = sa.select(
        r.site_id, r.hour_ms, r.key, r.calls, r.answered, r.duration_s, r.billable_s
    ).where(r.dim == dim, r.hour_ms >= start_ms, r.hour_ms < end_ms)
    if sites is not None:
        query = query.where(r.site_id.in_(sorted(sites)))
    return conn.execute(query)


def summary(
    conn: sa.Connection,
    sites: frozenset[str] | None,
    start_ms: int,
    end_ms: int,
    tz: ZoneInfo,
    group: str,
) -> list[dict[str, Any]]:
    """Calls, answered, ASR, ACD, minutes and busiest hour per site and day (or hour)."""
    buckets: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
    hourly: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    periods = _LocalPeriods(tz, group)
    for row in _rollup_rows(conn, "site", sites, start_ms, end_ms):
        local = periods.of(row.hour_ms)
        if local is None:
            continue
        period, hour = local
        _add(buckets[(row.site_id, period)], row)
        hourly[(row.site_id, period)][hour] += row.calls
    result = []
    for (site_id, period), totals in sorted(buckets.items()):
        line = {"site_id": site_id, "period": period, **_figures(totals)}
        if group == "day":
            hours = hourly[(site_id, period)]
            line["busiest_hour"] = f"{max(hours, key=lambda h: (hours[h], -h)):02d}:00"
        result.append(line)
    return result


class _LocalPeriods:
    """The local period (day or hour) and hour an hour's start falls in, each hour once.

    A month has 720 hours but a summary reads one rollup row per site and hour, so the
    time-zone conversion is done per hour, not per row.
    """

    def __init__(self, tz: ZoneInfo, group: str) -> None:
        self._tz = tz
        self._group = group
        self._seen: dict[int, tuple[str, int] | None] = {}

    def of(self, hour_ms: int) -> tuple[str, int] | None:
        if hour_ms not in self._seen:
            local = local_time(hour_ms, self._tz)
            if local is None:
                self._seen[hour_ms] = None
            else:
                day = self._group == "day"
                self._seen[hour_ms] = (local.date().isoformat() if day else local.isoformat(),
                                       local.hour)  # fmt: skip
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


def _add(totals: list[float], row: Any) -> None:
    totals[0] += row.calls
    totals[1] += row.answered
    totals[2] += row.duration_s
    totals[3] += row.billable_s


def _figures(totals: list[float]) -> Mapping[str, Any]:
    calls, answered, duration_s, billable_s = totals
    return {
        "calls": int(calls),
        "answered": int(answered),
        "asr_percent": round(100 * answered / calls, 2) if calls else 0.0,
        "acd_s": round(billable_s / answered, 1) if answered else 0.0,
        "total_minutes": round(duration_s / 60, 2),
        "billable_minutes": round(billable_s / 60, 2),
    }
