"""Hotel records at HQ as the API reads them: searches and the chain report (no HTTP here).

Times are stored as UTC epoch milliseconds and rendered in the requested time zone. The
report counts per UTC hour in SQL (one row per site, hour and outcome) and attributes each
hour to the local day its start falls in, as the CDR summaries do (exact for zones with
whole-hour offsets); a posting that carries the hotel's business date counts on that day
instead (a charge booked between midnight and the night audit belongs to "yesterday").
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from aggregator import reports
from aggregator.store.schema import hotel_postings, hotel_wake_ups

HOUR_MS = 3_600_000
WAKE_UP_COLUMNS = {"OK": "wake_ups_ok", "BY": "wake_ups_busy", "NR": "wake_ups_no_answer"}


@dataclass(frozen=True)
class HotelFilter:
    """Which records to list: sites (None: all), [start, end) in epoch ms, room."""

    sites: frozenset[str] | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    room: str | None = None


@dataclass(frozen=True)
class _Listing:
    """A searchable table: by which time column, its id column, its times rendered."""

    table: sa.Table
    at: str
    id: str
    times: tuple[str, ...]


_POSTINGS = _Listing(
    hotel_postings, "answered_ms", "posting_id", ("queued", "answered", "received")
)
_WAKE_UPS = _Listing(hotel_wake_ups, "ended_ms", "outcome_id", ("due", "ended", "received"))


def search_postings(
    conn: sa.Connection, flt: HotelFilter, tz: ZoneInfo, limit: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` postings matching ``flt`` (by answer time), newest first."""
    return _search(conn, _POSTINGS, flt, tz, limit)


def search_wake_ups(
    conn: sa.Connection, flt: HotelFilter, tz: ZoneInfo, limit: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` wake-up outcomes matching ``flt`` (by end time), newest first."""
    return _search(conn, _WAKE_UPS, flt, tz, limit)


def _search(
    conn: sa.Connection, listing: _Listing, flt: HotelFilter, tz: ZoneInfo, limit: int
) -> list[dict[str, Any]]:
    columns = listing.table.c
    at = columns[listing.at]
    query = sa.select(listing.table).order_by(at.desc(), columns[listing.id].desc())
    query = query.where(*_conditions(flt, listing.table, at))
    return [_render(row, listing, tz) for row in conn.execute(query.limit(limit))]


def hotel_report(
    conn: sa.Connection, sites: frozenset[str] | None, start_ms: int, end_ms: int, tz: ZoneInfo
) -> list[dict[str, Any]]:
    """Per site and local day: postings (booked, refused, amount), wake-ups by outcome."""
    days: dict[tuple[str, str], dict[str, Any]] = defaultdict(_empty_day)
    flt = HotelFilter(sites, start_ms, end_ms)
    local_day = _LocalDays(tz)
    for site, business, hour, answer, count, amount, duration in conn.execute(_posting_hours(flt)):
        totals = days[(site, business or local_day.of(int(hour)))]
        key = "postings" if answer == "OK" else "postings_refused"
        totals[key] += count
        if answer == "OK":
            totals["amount"] += int(amount or 0)
            totals["duration_s"] += int(duration or 0)
    for site, hour, result, alerted, count in conn.execute(_wake_up_hours(flt)):
        totals = days[(site, local_day.of(int(hour)))]
        totals[WAKE_UP_COLUMNS.get(result, "wake_ups_other")] += count
        totals["front_desk_alerted"] += count if alerted else 0
    return [{"site_id": site, "day": day, **days[(site, day)]} for site, day in sorted(days)]


def _empty_day() -> dict[str, Any]:
    names = ("postings", "postings_refused", "amount", "duration_s", *WAKE_UP_COLUMNS.values(),
             "wake_ups_other", "front_desk_alerted")  # fmt: skip
    return dict.fromkeys(names, 0)


def _hour(column: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    return (column - column % HOUR_MS).label("hour")


def _posting_hours(flt: HotelFilter) -> sa.Select[Any]:
    table = hotel_postings.c
    hour = _hour(table.answered_ms)
    return (
        sa.select(
            table.site_id,
            table.business_date,
            hour,
            table.answer,
            sa.func.count(),
            sa.func.sum(table.amount),
            sa.func.sum(table.duration_s),
        )
        .where(*_conditions(flt, hotel_postings, table.answered_ms))
        .group_by(table.site_id, table.business_date, hour, table.answer)
    )


def _wake_up_hours(flt: HotelFilter) -> sa.Select[Any]:
    table = hotel_wake_ups.c
    hour = _hour(table.ended_ms)
    return (
        sa.select(table.site_id, hour, table.result, table.front_desk_alerted, sa.func.count())
        .where(*_conditions(flt, hotel_wake_ups, table.ended_ms))
        .group_by(table.site_id, hour, table.result, table.front_desk_alerted)
    )


def _conditions(
    flt: HotelFilter, table: sa.Table, at: sa.ColumnElement[int]
) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = []
    if flt.sites is not None:
        found.append(table.c.site_id.in_(sorted(flt.sites)))
    if flt.start_ms is not None:
        found.append(at >= flt.start_ms)
    if flt.end_ms is not None:
        found.append(at < flt.end_ms)
    if flt.room is not None:
        found.append(table.c.room == flt.room)
    return found


class _LocalDays:
    """The local day an hour's start falls in, each hour converted once."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self._seen: dict[int, str] = {}

    def of(self, hour_ms: int) -> str:
        if hour_ms not in self._seen:
            local = reports.local_time(hour_ms, self._tz)
            self._seen[hour_ms] = "" if local is None else local.date().isoformat()
        return self._seen[hour_ms]


def _render(row: Any, listing: _Listing, tz: ZoneInfo) -> dict[str, Any]:
    found = dict(row._mapping)
    found["id"] = found.pop(listing.id)
    for name in listing.times:
        found[name] = reports.render_time(found.pop(f"{name}_ms"), tz)
    return found
