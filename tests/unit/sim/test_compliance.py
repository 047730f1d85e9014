"""Outbound compliance: DNC lists, attempts per local day, calling hours in time zones."""

from __future__ import annotations

import datetime
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest

from appliance.compliance.service import ComplianceService, normalize
from appliance.settings import ComplianceSettings
from appliance.store import Outbox, Store

UTC = datetime.UTC


def utc(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


SETTINGS = ComplianceSettings.model_validate(
    {
        "dnc": ["+49 30 111"],
        "max_attempts_per_day": 2,
        "windows": [{"start": "09:00", "end": "20:00", "days": [0, 1, 2, 3, 4]}],
        "campaigns": [
            {"id": "ny", "timezone": "America/New_York", "max_attempts_per_day": 1},
            {"id": "late", "windows": [{"start": "18:00", "end": "21:00"}]},
        ],
    }
)
MONDAY_NOON_BERLIN = utc("2026-03-02T11:00")


@pytest.fixture
async def compliance(tmp_path: Path) -> AsyncIterator[ComplianceService]:
    store = Store.open(tmp_path / "s", map_size_mb=16)
    service = ComplianceService(SETTINGS, "Europe/Berlin", lambda: store)
    await service.start()
    yield service
    store.close()


def refusals(service: ComplianceService) -> list[str]:
    outbox = Outbox(service._store(), "compliance")
    return [msgpack.unpackb(raw)["error_id"] for _, raw in outbox.read_batch()]


def test_numbers_are_normalized_and_garbage_refused() -> None:
    assert normalize("+49 (30) 123-45.6") == "+4930123456"
    with pytest.raises(ValueError, match="not a phone number"):
        normalize("call me")


async def test_site_and_company_dnc_refuse_with_their_own_reasons(
    compliance: ComplianceService,
) -> None:
    assert compliance.check("+4930111", now=MONDAY_NOON_BERLIN).error_id == "dnc-site"
    compliance.add_site_dnc("030 222", "asked not to be called")
    assert compliance.check("030222", now=MONDAY_NOON_BERLIN).error_id == "dnc-site"
    assert compliance.apply_company_dnc(3, {"+4930333": "complaint"}) == (True, "")
    decision = compliance.check("+49 30 333", now=MONDAY_NOON_BERLIN)
    assert (decision.allowed, decision.error_id) == (False, "dnc-company")
    assert decision.message == "+4930333 is on the company's do-not-call list"
    assert compliance.remove_site_dnc("030222")
    assert compliance.check("030222", now=MONDAY_NOON_BERLIN).allowed
    assert refusals(compliance) == ["dnc-site", "dnc-site", "dnc-company"]
    assert compliance.apply_company_dnc(4, ["+4930333"])[0] is False


async def test_attempts_are_limited_per_destination_and_local_day(
    compliance: ComplianceService,
) -> None:
    answers = [compliance.check("+4930444", now=MONDAY_NOON_BERLIN) for _ in range(3)]
    assert [a.allowed for a in answers] == [True, True, False]
    assert answers[2].error_id == "attempt-limit"
    assert compliance.check("+4930555", now=MONDAY_NOON_BERLIN).allowed
    tuesday = utc("2026-03-03T09:00")
    assert compliance.check("+4930444", now=tuesday).attempts_today == 1
    assert not [k for k, _ in compliance._state.items("compliance:attempts:2026-03-02")]  # type: ignore[union-attr]


async def test_calling_hours_follow_the_site_or_campaign_time_zone(
    compliance: ComplianceService,
) -> None:
    # 19:30 UTC is 20:30 in Berlin (closed) and 14:30 in New York (open, site windows).
    evening = utc("2026-03-02T19:30")
    closed = compliance.check("+4930666", now=evening)
    assert closed.error_id == "outside-calling-hours"
    assert closed.message == ("calls are allowed 09:00-20:00 (Europe/Berlin); it is Mon 20:30")
    assert compliance.check("+1212555", "ny", now=evening).allowed
    assert compliance.check("+1212555", "ny", now=evening).error_id == "attempt-limit"
    assert compliance.check("+4930777", "late", now=evening).allowed
    assert compliance.check("+4930888", "late", now=MONDAY_NOON_BERLIN).error_id == (
        "outside-calling-hours"
    )
    assert compliance.check("+4930999", "nope", now=MONDAY_NOON_BERLIN).error_id == (
        "unknown-campaign"
    )
    saturday = utc("2026-03-07T11:00")
    assert compliance.check("+4930999", now=saturday).error_id == "outside-calling-hours"


async def test_calling_hours_across_the_spring_dst_change(compliance: ComplianceService) -> None:
    # On 2026-03-29 Berlin moves to UTC+2: 07:30 UTC is 09:30 local (open), 06:30 UTC is 08:30.
    assert compliance.check("+4930123", now=utc("2026-03-30T07:30")).allowed
    assert not compliance.check("+4930124", now=utc("2026-03-30T06:30")).allowed
    assert compliance.check("+4930125", now=utc("2026-03-27T08:30")).allowed  # 09:30 CET


async def test_a_refusal_is_logged_at_info_with_its_sentence(
    compliance: ComplianceService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.compliance.service")
    assert compliance.check("+4930111", now=MONDAY_NOON_BERLIN).error_id == "dnc-site"
    assert "+4930111 is on this site's do-not-call list" in caplog.text
