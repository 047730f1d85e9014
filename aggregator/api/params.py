"""Query parameters every HQ slice reads alike: output format, time zone, times and spans.

A parameter that does not parse answers ``422`` with the ``error_id`` of the
``reports.QueryError`` behind it (``bad-time-zone``, ``bad-time``, ``span-too-long``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Query
from fastapi.responses import JSONResponse

from aggregator import reports
from aggregator.api.csv_export import csv_response
from aggregator.api.errors import ApiError

Format = Literal["json", "csv"]
T = TypeVar("T")


def guard(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)``, with a ``reports.QueryError`` answered as a 422 API error."""
    try:
        return func(*args)
    except reports.QueryError as err:
        raise ApiError(422, err.error_id, str(err)) from None


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``."""
    return guard(reports.zone, name)


def time_ms(text: str | None, tz: ZoneInfo) -> int | None:
    """A date or ISO time as epoch milliseconds (None when not given)."""
    return None if text is None else guard(reports.parse_time, text, tz)


def span(start: str, end: str, tz: ZoneInfo, max_days: int) -> tuple[int, int]:
    """A report's [start, end) in epoch milliseconds, at most ``max_days`` long."""
    first, last = guard(reports.parse_time, start, tz), guard(reports.parse_time, end, tz)
    return guard(reports.report_span, first, last, max_days)


@dataclass(frozen=True)
class Window:
    """A report's [start_ms, end_ms) in epoch milliseconds; its days and hours are in ``tz``."""

    start_ms: int
    end_ms: int
    tz: ZoneInfo


def report_window(max_days: int) -> Callable[..., Window]:
    """The dependency reading a report's ``from``, ``to`` (at most ``max_days`` apart), ``tz``."""

    def window(
        start: Annotated[str, Query(alias="from", description="date or ISO time")],
        end: Annotated[str, Query(alias="to", description="exclusive")],
        tz: str = "UTC",
    ) -> Window:
        local = zone(tz)
        first, last = span(start, end, local, max_days)
        return Window(first, last, local)

    return window


def respond(rows: list[dict[str, Any]], format: Format, filename: str, key: str = "rows") -> Any:
    """``{key: rows}``, or the rows as a CSV attachment."""
    if format == "csv":
        return csv_response(filename, iter(rows))
    return {key: rows}


def respond_plain(
    rows: list[dict[str, Any]], format: Format, filename: str, key: str = "rows"
) -> Any:
    """As ``respond``, for rows holding JSON's own types only (text, numbers, None): the
    JSON is written directly, without FastAPI's encoder walking every value (about 40 µs a
    row, most of a month's hourly summary)."""
    if format == "csv":
        return csv_response(filename, iter(rows))
    return JSONResponse({key: rows})
