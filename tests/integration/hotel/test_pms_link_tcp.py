"""The appliance's PMS link against the PMS simulator over TCP, in one process.

The simulator runs its own loop in a thread; the link service runs on the test's loop with a
real LMDB store, the real asyncio adapter and the real framing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.hotel.pms_link import PmsLinkService, stored_rooms
from appliance.hotel.postings import Posting, PostingQueue
from appliance.hotel.rooms import RoomBook
from appliance.hotel.settings import PmsSettings
from appliance.hotel.wiring import build_client
from appliance.store import StateStore, Store
from drivers.fias.simulator.core import PmsCore
from drivers.fias.simulator.server import PmsSimulator

ROOMS = ("101", "102", "0330")


@pytest.fixture
def simulator() -> Iterator[PmsSimulator]:
    sim = PmsSimulator(PmsCore(rooms={room: [] for room in ROOMS}))
    sim.start()
    sim.act(lambda core: core.check_in("101", "Guest, Mr."))
    sim.act(lambda core: core.check_in("0330", "Gast, Hr.", "GE"))
    yield sim
    sim.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", map_size_mb=64)
    yield opened
    opened.close()


@pytest.fixture
async def pms(simulator: PmsSimulator, store: Store) -> AsyncIterator[PmsLinkService]:
    settings = PmsSettings(port=simulator.port, reconnect_min_s=0.2, reconnect_max_s=0.5)
    client = build_client(settings, "UTC")
    service = PmsLinkService(settings, lambda: store, client, RoomBook({}, "international"))
    await service.start()
    yield service
    await service.stop()


async def until(check: Callable[[], Any], within: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within}s: {what}")


def state(sim: PmsSimulator) -> dict[str, Any]:
    return sim.query(PmsCore.snapshot)


def charge(room: str, cents: int) -> Posting:
    return Posting.of(room, {"PT": "C", "TA": cents, "DA": "261207", "TI": "101500"})


async def test_link_starts_up_and_the_resync_rebuilds_every_room(
    pms: PmsLinkService, simulator: PmsSimulator, store: Store
) -> None:
    await until(lambda: pms.status()["rooms"] == 3, what="resync applied")
    received = state(simulator)["received"]
    assert received[0].startswith("LD|")
    assert "|V#1.0|IFPB|" in received[0]
    assert [r[:7] for r in received[1:12]] == [
        f"LR|RI{ri}" for ri in ("GI", "GC", "GO", "RE", "WR", "WC", "WA", "PS", "PA", "NS", "NE")
    ]
    assert received[12].startswith("LA|")
    assert received[13].startswith("DR|")
    rooms = stored_rooms(StateStore(store, "hotel"))
    assert rooms["0330"]["guests"] == [
        {"reservation": "10002", "name": "Gast, Hr.", "language": "GE"}
    ]
    assert rooms["102"]["guests"] == []
    assert pms.status()["occupied"] == 2


async def test_postings_go_one_at_a_time_across_a_link_drop_and_a_night_audit(
    pms: PmsLinkService, simulator: PmsSimulator
) -> None:
    await until(lambda: pms.status()["state"] == "active", what="link up")
    simulator.act(lambda core: _answers(core, "slow", 0.3))
    numbers = [pms.post(charge(("101", "0330")[n % 2], 100 + n)) for n in range(12)]
    await until(lambda: len(state(simulator)["postings"]) >= 3, what="first postings booked")
    assert simulator.drop()
    await until(lambda: len(state(simulator)["postings"]) >= 6, what="postings after the drop")
    simulator.act(lambda core: core.set_night_audit(True))
    await until(lambda: pms.status()["night_audit"], what="night audit seen")
    booked_during_audit = len(state(simulator)["postings"])
    await asyncio.sleep(1.0)
    assert len(state(simulator)["postings"]) == booked_during_audit
    simulator.act(lambda core: core.set_night_audit(False))
    await until(lambda: pms.status()["postings_pending"] == 0, within=40, what="all answered")
    final = state(simulator)
    assert [p["number"] for p in final["postings"]] == numbers
    assert [p["record"].split("|TA")[1][:3] for p in final["postings"]] == [
        str(100 + n) for n in range(12)
    ]
    assert final["overlaps"] == 0
    assert all(p["status"] == "OK" for p in final["postings"])
    assert simulator.connections == 2, "reconnected once, after the drop"


async def test_a_pms_that_answers_twice_books_once_and_the_extra_answer_is_ignored(
    pms: PmsLinkService, simulator: PmsSimulator, store: Store
) -> None:
    await until(lambda: pms.status()["state"] == "active", what="link up")
    simulator.act(lambda core: _answers(core, "twice", 0.0))
    numbers = [pms.post(charge("101", 500 + n)) for n in range(5)]
    await until(lambda: pms.status()["postings_pending"] == 0, what="all answered")
    final = state(simulator)
    assert [p["number"] for p in final["postings"]] == numbers
    assert final["overlaps"] == 0
    assert [o.number for o in pms.outcomes] == numbers
    await pms.stop()
    assert PostingQueue(store).pending() == 0, "every answered posting left the store by stop"
    await until(lambda: state(simulator)["received"][-1].startswith("LE|"), what="LE on stop")


async def test_a_posting_for_a_room_checked_out_meanwhile_is_still_delivered_once(
    pms: PmsLinkService, simulator: PmsSimulator
) -> None:
    await until(lambda: pms.status()["state"] == "active", what="link up")
    simulator.act(lambda core: _answers(core, "never", 0.0))
    blocked = pms.post(charge("0330", 700))
    await until(lambda: state(simulator)["postings"], what="first posting received")
    late = pms.post(charge("101", 800))
    simulator.act(lambda core: core.check_out("101"))
    simulator.act(lambda core: _answers(core, "normal", 0.0))
    assert simulator.drop(), "the unanswered posting is resent on the new link"
    await until(lambda: pms.status()["postings_pending"] == 0, within=30, what="delivered")
    final = state(simulator)
    assert [(p["number"], p["room"]) for p in final["postings"]] == [
        (blocked, "0330"),
        (late, "101"),
    ]
    assert final["postings"][1]["reservation"] == "10001", "booked to the departed guest's folio"
    assert final["repeats"] == 1, "the unanswered P# came again and was recognised"
    assert [o.status for o in pms.outcomes] == ["OK", "OK"]


async def test_postings_made_after_link_end_wait_for_the_pms_restart_and_then_flow(
    pms: PmsLinkService, simulator: PmsSimulator
) -> None:
    await until(lambda: pms.status()["state"] == "active", what="link up")
    simulator.act(lambda core: core.link_end(restart_after=1.5))
    await until(lambda: pms.status()["state"] == "ended", what="LE seen")
    numbers = [pms.post(charge("101", 900 + n)) for n in range(3)]
    await asyncio.sleep(0.5)
    assert state(simulator)["postings"] == [], "nothing is posted while the link is ended"
    assert any(r.startswith("LE|") for r in state(simulator)["received"]), "our LE answer"
    await until(lambda: pms.status()["postings_pending"] == 0, what="posted after the restart")
    assert [p["number"] for p in state(simulator)["postings"]] == numbers


async def test_bad_records_from_the_pms_are_survived_and_the_link_stays_up(
    pms: PmsLinkService, simulator: PmsSimulator
) -> None:
    await until(lambda: pms.status()["state"] == "active", what="link up")
    assert simulator.send_raw(b"garbage\x02XZ|RN1|\x03\x02GI|RN2|Z|\x03\x02RE|RN1|ML\x01|\x03")
    number = pms.post(charge("101", 300))
    await until(lambda: pms.status()["postings_pending"] == 0, what="posting answered")
    assert state(simulator)["postings"][0]["number"] == number
    assert pms.status()["state"] == "active"


def _answers(core: PmsCore, mode: str, delay: float) -> list[Any]:
    core.answer_mode = mode  # type: ignore[assignment]
    core.answer_delay = delay
    return []


async def test_a_refused_posting_is_announced_on_the_event_stream(
    pms: PmsLinkService, simulator: PmsSimulator
) -> None:
    alerts: list[tuple[str, dict[str, Any]]] = []
    pms.alert = lambda kind, data: alerts.append((kind, data))
    await until(lambda: pms.status()["state"] == "active", what="link up")
    number = pms.post(charge("102", 250))
    await until(lambda: alerts, what="refusal announced")
    assert alerts == [("hotel.posting-refused", {"room": "102", "status": "NG",
                       "posting_number": number, "text": "GUEST NOT FOUND"})]  # fmt: skip


def door_signs(sim: PmsSimulator) -> list[str]:
    return [r for r in state(sim)["received"] if r.startswith("RE|")]


async def test_the_guests_dnd_reaches_the_pms_as_door_sign_statuses_and_check_out_clears_it(
    pms: PmsLinkService, simulator: PmsSimulator, store: Store
) -> None:
    alerts: list[tuple[str, dict[str, Any]]] = []
    pms.alert = lambda kind, data: alerts.append((kind, data))
    await until(lambda: pms.status()["occupied"] == 2, what="resync applied")
    assert not pms.guest_dnd("102", True), "a vacant room"
    assert pms.guest_dnd("101", True)
    await until(lambda: door_signs(simulator) == ["RE|RN101|RS8|"], what="DND on")
    assert stored_rooms(StateStore(store, "hotel"))["101"]["dnd"] is True
    assert alerts == [("hotel.dnd", {"room": "101", "extension": None, "dnd": True,
                       "source": "phone"})]  # fmt: skip
    simulator.act(lambda core: core.check_out("101"))
    await until(lambda: len(door_signs(simulator)) == 2, what="the door sign cleared")
    assert door_signs(simulator)[1] == "RE|RN101|RS10|"
    assert pms.rooms.room("101").dnd is False

    simulator.act(lambda core: core.check_out("0330"))
    await until(lambda: not pms.rooms.room("0330").occupied, what="0330 checked out")
    await asyncio.sleep(0.5)
    assert len(door_signs(simulator)) == 2, "no DND was on: the PMS is told nothing"

    simulator.act(lambda core: core.check_in("102", "Late, Ms."))
    await until(lambda: pms.rooms.room("102").occupied, what="102 checked in")
    simulator.act(lambda core: core.link_end(restart_after=3.0))
    await until(lambda: pms.status()["state"] == "ended", what="LE seen")
    assert pms.guest_dnd("102", True)
    assert pms.guest_dnd("102", False)
    await asyncio.sleep(0.5)
    assert len(door_signs(simulator)) == 2, "nothing is sent while the link is ended"
    await until(lambda: len(door_signs(simulator)) == 3, what="sent after the restart")
    assert door_signs(simulator)[2] == "RE|RN102|RS10|", "only the latest status of the room"


async def test_door_signs_owed_during_a_night_audit_go_out_in_order_after_it(
    pms: PmsLinkService, simulator: PmsSimulator
) -> None:
    await until(lambda: pms.status()["occupied"] == 2, what="resync applied")
    simulator.act(lambda core: core.set_night_audit(True))
    await until(lambda: pms.status()["night_audit"], what="night audit seen")
    assert pms.guest_dnd("0330", True)
    assert pms.guest_dnd("101", True)
    assert pms.guest_dnd("0330", False)
    await asyncio.sleep(1.0)
    assert door_signs(simulator) == [], "held during the night audit"
    simulator.act(lambda core: core.set_night_audit(False))
    await until(lambda: len(door_signs(simulator)) == 2, what="sent after the night audit")
    await asyncio.sleep(1.0)
    assert door_signs(simulator) == ["RE|RN101|RS8|", "RE|RN0330|RS10|"]
    assert len(pms.door_signs()) == 0


async def test_door_signs_owed_while_the_pms_is_away_are_sent_after_a_restart(
    simulator: PmsSimulator, store: Store
) -> None:
    settings = PmsSettings(port=simulator.port, reconnect_min_s=0.2, reconnect_max_s=0.5)
    first = PmsLinkService(settings, lambda: store, build_client(settings, "UTC"),
                           RoomBook({}, "international"))  # fmt: skip
    await first.start()
    await until(lambda: first.status()["occupied"] == 2, what="resync applied")
    simulator.act(lambda core: core.link_end())
    await until(lambda: first.status()["state"] == "ended", what="LE seen")
    assert first.guest_dnd("101", True)
    await first.stop()
    assert door_signs(simulator) == []
    assert first.status()["door_signs_pending"] == 1
    second = PmsLinkService(settings, lambda: store, build_client(settings, "UTC"),
                            RoomBook({}, "international"))  # fmt: skip
    await second.start()
    try:
        await until(lambda: door_signs(simulator), what="sent after the restart")
        await asyncio.sleep(1.0)
        assert door_signs(simulator) == ["RE|RN101|RS8|"]
        assert second.status()["door_signs_pending"] == 0
    finally:
        await second.stop()
