"""The night audit and the business date, over TCP against the PMS simulator, in one process.

Postings queued during the audit wait until NE; each carries the business date in force
when it was queued, which the end of the audit moves on; the date is stored, survives a
restart, and is shown with the link's state (``GET /api/v1/hotel/pms``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.hotel.business_date import BusinessDate
from appliance.hotel.pms_link import PmsLinkService
from appliance.hotel.postings import Posting
from appliance.hotel.reports import OUTBOX, HqReports
from appliance.hotel.rooms import RoomBook
from appliance.hotel.settings import PmsSettings
from appliance.hotel.wiring import build_client
from appliance.store import Outbox, Store
from drivers.fias.simulator.core import PmsCore
from drivers.fias.simulator.server import PmsSimulator
from drivers.sync.hotel import HotelPosting, parse_hotel_record
from tests.integration.hotel.test_pms_link_tcp import state, until

ZONE = "Europe/Lisbon"


class Clock:
    """Wall-clock time in the site's zone, moved by the test."""

    def __init__(self, local: str) -> None:
        self.set(local)

    def set(self, local: str) -> None:
        self.now = dt.datetime.fromisoformat(local).replace(tzinfo=dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def simulator() -> Iterator[PmsSimulator]:
    sim = PmsSimulator(PmsCore(rooms={"101": []}))
    sim.start()
    sim.act(lambda core: core.check_in("101", "Guest, Mr."))
    yield sim
    sim.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", map_size_mb=64)
    Outbox(opened, OUTBOX)
    yield opened
    opened.close()


def link(simulator: PmsSimulator, store: Store, clock: Clock) -> PmsLinkService:
    settings = PmsSettings(port=simulator.port, reconnect_min_s=0.2, reconnect_max_s=0.5)
    business = BusinessDate(lambda: store, ZONE, clock)
    reports = HqReports(lambda: store, ZONE).postings
    return PmsLinkService(settings, lambda: store, build_client(settings, ZONE),
                          RoomBook({}, "international"), reports, business)  # fmt: skip


async def night_audit(simulator: PmsSimulator, pms: PmsLinkService, clock: Clock, end: str) -> None:
    simulator.act(lambda core: core.set_night_audit(True))
    await until(lambda: pms.status()["night_audit"], what="night audit seen")
    clock.set(end)
    simulator.act(lambda core: core.set_night_audit(False))
    await until(lambda: not pms.status()["night_audit"], what="night audit ended")


def charge(cents: int) -> Posting:
    return Posting.of("101", {"PT": "C", "TA": cents})


async def test_postings_during_the_audit_wait_for_ne_and_carry_the_business_date(
    simulator: PmsSimulator, store: Store
) -> None:
    clock = Clock("2026-12-07T03:00:00")  # site time: Lisbon is UTC+0 in December
    pms = link(simulator, store, clock)
    await pms.start()
    try:
        await until(lambda: pms.status()["state"] == "active", what="link up")
        assert pms.status()["business_date"] == "2026-12-07", "no audit seen yet: today"
        await night_audit(simulator, pms, clock, "2026-12-07T03:20:00")
        clock.set("2026-12-07T21:00:00")
        assert pms.status()["business_date"] == "2026-12-07"
        pms.post(charge(100))
        clock.set("2026-12-08T02:30:00")
        assert pms.status()["business_date"] == "2026-12-07", "after midnight: yesterday"
        pms.post(charge(200))
        await until(lambda: pms.status()["postings_pending"] == 0, what="both answered")
        simulator.act(lambda core: core.set_night_audit(True))
        await until(lambda: pms.status()["night_audit"], what="night audit seen")
        clock.set("2026-12-08T03:10:00")
        pms.post(charge(300))
        await asyncio.sleep(1.0)
        assert len(state(simulator)["postings"]) == 2, "a posting went out during the audit"
        clock.set("2026-12-08T03:25:00")
        simulator.act(lambda core: core.set_night_audit(False))
        await until(lambda: pms.status()["postings_pending"] == 0, what="held posting sent")
        assert pms.status()["business_date"] == "2026-12-08"
        pms.post(charge(400))
        await until(lambda: pms.status()["postings_pending"] == 0, what="last one answered")
    finally:
        await pms.stop()
    booked = [p["record"].split("|TA")[1].split("|")[0] for p in state(simulator)["postings"]]
    assert booked == ["100", "200", "300", "400"]
    dates = [
        r.business_date
        for r in (parse_hotel_record(raw) for _, raw in Outbox(store, OUTBOX).read_batch())
        if isinstance(r, HotelPosting)
    ]
    assert dates == ["2026-12-07", "2026-12-07", "2026-12-07", "2026-12-08"]
    clock.set("2026-12-08T22:00:00")
    restarted = BusinessDate(lambda: store, ZONE, clock)
    assert restarted.current() == "2026-12-08", "the stored date survives a restart"
    clock.set("2026-12-09T01:00:00")
    assert restarted.current() == "2026-12-08", "until the next audit ends"
