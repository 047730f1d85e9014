"""Limits, counters and their reset at the site's local midnight and month start."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest

from appliance.sim.limits import Limits, LimitsError, Window, call_time_limit, exhausted
from appliance.sim.usage import Usage, recorded, rolled

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def calls(usage: Usage, day: datetime.date, n: int, seconds: float = 60.0) -> Usage:
    for _ in range(n):
        usage = recorded(usage, day, True, seconds, 10.0, 20)
    return usage


def test_each_limit_names_itself_when_reached() -> None:
    day = datetime.date(2026, 3, 2)
    usage = calls(Usage(), day, 3)
    noon = at("2026-03-02T12:00")
    assert exhausted(Limits(calls_per_day=3), usage, noon) == "calls-per-day"
    assert exhausted(Limits(minutes_per_day=3), usage, noon) == "minutes-per-day"
    assert exhausted(Limits(minutes_per_month=2.5), usage, noon) == "minutes-per-month"
    assert exhausted(Limits(calls_per_day=4, minutes_per_day=4), usage, noon) is None
    hours = (Window(datetime.time(8), datetime.time(11)),)
    assert exhausted(Limits(hours=hours), usage, noon) == "outside-hours"
    assert exhausted(Limits(hours=()), usage, noon) is None


def test_call_time_limit_is_the_smallest_of_max_duration_and_minutes_left() -> None:
    usage = calls(Usage(), datetime.date(2026, 3, 2), 2)
    assert call_time_limit(Limits(), usage) is None
    assert call_time_limit(Limits(max_call_s=600), usage) == 600
    assert call_time_limit(Limits(max_call_s=600, minutes_per_day=5), usage) == 180
    assert call_time_limit(Limits(minutes_per_month=2), usage) == 1


def test_counters_reset_at_local_midnight_and_month_start_not_utc() -> None:
    usage = calls(Usage(), datetime.date(2026, 1, 31), 2)
    # 23:30 UTC on Jan 31 is already Feb 1 in Berlin: a new day and a new month.
    late = datetime.datetime(2026, 1, 31, 23, 30, tzinfo=datetime.UTC).astimezone(BERLIN)
    fresh = rolled(usage, late.date())
    assert (fresh.day, fresh.calls_today, fresh.connected_s_month) == ("2026-02-01", 0, 0.0)
    same_month = rolled(calls(fresh, late.date(), 1), datetime.date(2026, 2, 2))
    assert (same_month.calls_today, same_month.connected_s_month) == (0, 60.0)
    assert same_month.days["2026-01-31"] == [2, 2, 120.0, 2]


@pytest.mark.parametrize(
    ("utc", "local_day"),
    [
        ("2026-03-28T23:30:00+00:00", "2026-03-29"),  # the night the clocks go forward
        ("2026-03-29T21:59:00+00:00", "2026-03-29"),  # 23:59 CEST, still the short day
        ("2026-03-29T22:00:00+00:00", "2026-03-30"),  # local midnight after the change
        ("2026-10-25T22:59:00+00:00", "2026-10-25"),  # 23:59 CET, end of the 25-hour day
        ("2026-10-25T23:00:00+00:00", "2026-10-26"),
    ],
)
def test_the_local_day_follows_dst_changes(utc: str, local_day: str) -> None:
    moment = datetime.datetime.fromisoformat(utc).astimezone(BERLIN)
    assert rolled(Usage(), moment.date()).day == local_day


def test_windows_wrap_past_midnight_and_respect_days() -> None:
    night = Window(datetime.time(22), datetime.time(6), days=(4,))  # Friday night
    assert night.open_at(at("2026-03-06T23:00"))  # Friday
    assert night.open_at(at("2026-03-07T05:59"))  # Saturday morning, Friday's window
    assert not night.open_at(at("2026-03-07T23:00"))
    assert not night.open_at(at("2026-03-06T21:59"))


def test_limits_documents_round_trip_and_bad_ones_are_refused() -> None:
    doc = {"calls_per_day": 5, "hours": [{"start": "08:00", "end": "20:00", "days": [0, 1]}]}
    assert Limits.from_doc(doc).to_doc() == doc
    with pytest.raises(LimitsError, match="unknown limit 'calls'"):
        Limits.from_doc({"calls": 1})
    with pytest.raises(LimitsError, match="HH:MM"):
        Limits.from_doc({"hours": [{"start": "8", "end": "20:00"}]})
    with pytest.raises(LimitsError, match="whole number"):
        Limits.from_doc({"calls_per_day": 1.5})
    layered = Limits(calls_per_day=5).over(Limits(calls_per_day=1, max_call_s=60))
    assert layered == Limits(calls_per_day=5, max_call_s=60)


def test_failure_streak_survives_the_day_change_and_an_answer_resets_it() -> None:
    usage = Usage()
    for _ in range(3):
        usage = recorded(usage, datetime.date(2026, 3, 2), False, 0, 10, 20)
    usage = rolled(usage, datetime.date(2026, 3, 3))
    assert usage.failure_streak == 3
    assert recorded(usage, datetime.date(2026, 3, 3), True, 5, 10, 20).failure_streak == 0
    assert recorded(usage, datetime.date(2026, 3, 3), True, 5, 10, 20).effective_today == 0
