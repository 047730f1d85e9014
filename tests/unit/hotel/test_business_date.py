"""The business date: opened by the end of a night audit, kept within yesterday and today."""

from __future__ import annotations

import datetime as dt

from appliance.hotel.business_date import in_force, opened_by_audit


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_an_audit_in_the_small_hours_opens_that_day_and_an_evening_one_the_next() -> None:
    assert opened_by_audit(at("2026-12-08T03:25:00")) == dt.date(2026, 12, 8)
    assert opened_by_audit(at("2026-12-08T11:59:00")) == dt.date(2026, 12, 8)
    assert opened_by_audit(at("2026-12-07T23:30:00")) == dt.date(2026, 12, 8)


def test_between_midnight_and_the_audit_charges_belong_to_yesterday() -> None:
    opened = dt.date(2026, 12, 7)
    assert in_force(opened, at("2026-12-07T21:00:00")) == dt.date(2026, 12, 7)
    assert in_force(opened, at("2026-12-08T02:30:00")) == dt.date(2026, 12, 7)


def test_a_missed_audit_never_holds_charges_on_an_old_day_nor_on_a_future_one() -> None:
    assert in_force(dt.date(2026, 12, 1), at("2026-12-08T10:00:00")) == dt.date(2026, 12, 7)
    assert in_force(dt.date(2026, 12, 9), at("2026-12-08T10:00:00")) == dt.date(2026, 12, 8)
    assert in_force(None, at("2026-12-08T01:00:00")) == dt.date(2026, 12, 8)
