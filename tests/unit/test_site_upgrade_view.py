"""HQ shows each site's last upgrade from its status, checked field by field."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest

from aggregator.sites.queries import SiteRow

REPORTED = {
    "from_version": "0.1.0",
    "to_version": "0.1.2",
    "result": "rolled-back",
    "error_id": "health-check-failed",
    "detail": "callmesh-appliance.service failed",
    "started": "2026-12-07T06:00:00+00:00",
    "finished": "2026-12-07T06:01:00+00:00",
}


def row(health: dict[str, Any] | None) -> SiteRow:
    return SiteRow("site-a", True, None, "callmesh 0.1.0", 0, 0, health)


def test_the_last_upgrade_a_site_reported_is_shown_with_its_result() -> None:
    last = row({"upgrade": REPORTED}).last_upgrade

    assert last is not None
    assert asdict(last) == {
        "from_version": "0.1.0",
        "to_version": "0.1.2",
        "result": "rolled-back",
        "error_id": "health-check-failed",
        "finished": "2026-12-07T06:01:00+00:00",
    }
    assert last.summary == "0.1.0 → 0.1.2 rolled-back (health-check-failed)"


@pytest.mark.parametrize(
    "health",
    [None, {}, {"upgrade": "yes"}, {"upgrade": {**REPORTED, "result": 3}}],
)
def test_a_site_without_a_valid_upgrade_report_shows_none(health: dict[str, Any] | None) -> None:
    assert row(health).last_upgrade is None
