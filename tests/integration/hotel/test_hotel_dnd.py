"""DND in the call path, end to end: the hotel appliance, the PMS simulator, pjsua2 phones.

Room 0101 is extension 1001, room 0102 is 1003; 1002 is the front desk, which takes the
calls of a room with DND set (``hotel.dnd.action: front-desk``). The PMS sets and clears
DND with ``RE|RN..|DN..|``; a wake-up call still rings the room.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from drivers.fias.simulator.core import PmsCore
from drivers.fias.simulator.server import PmsSimulator
from tests.integration.hotel.test_hotel_calls import (
    ROOMS,
    HotelPbx,
    refused_reason,
    wake_up_at,
)
from tests.integration.pbx.harness import (
    Phone,
    free_udp_tcp_port,
    no_daemons_left,
    phones,
    require_debs,
    wait_for,
)
from tests.integration.pbx.test_ivr_flows import recorded_enough

STX, ETX = b"\x02", b"\x03"


class DndHotelPbx(HotelPbx):
    """The hotel appliance with DND calls going to the front desk."""

    def __init__(self, root: Path, pms_port: int, trunk_port: int) -> None:
        super().__init__(root, pms_port, trunk_port)
        config = yaml.safe_load(self.config.read_text())
        config["hotel"]["dnd"] = {"action": "front-desk", "front_desk": "1002"}
        self.config.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def simulator() -> Iterator[PmsSimulator]:
    sim = PmsSimulator(PmsCore(rooms={room: [] for room in ROOMS}))
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def hotel(
    tmp_path_factory: pytest.TempPathFactory, simulator: PmsSimulator
) -> Iterator[DndHotelPbx]:
    require_debs()
    root = tmp_path_factory.mktemp("hotel-dnd")
    instance = DndHotelPbx(root, simulator.port, free_udp_tcp_port(15000, 17999))
    try:
        instance.start()
        simulator.act(lambda core: core.check_in("0101", "Guest, Mr."))
        simulator.act(lambda core: core.check_in("0102", "Sleeper, Ms."))
        wait_for(lambda: instance.room("0102")["guests"] != [], 10, instance.output)
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(root)


def set_dnd(hotel: DndHotelPbx, simulator: PmsSimulator, on: bool) -> None:
    flag = b"Y" if on else b"N"
    assert simulator.send_raw(STX + b"RE|RN0102|DN" + flag + b"|" + ETX)
    wait_for(lambda: hotel.room("0102")["dnd"] is on, 10, hotel.output)


def not_rung(phone: Phone) -> bool:
    try:
        phone.wait(lambda e: e["ev"] == "incoming", timeout=2)
    except AssertionError:
        return True
    return False


def test_a_room_with_dnd_is_not_rung_its_calls_reach_the_front_desk_until_dnd_ends(
    hotel: DndHotelPbx, simulator: PmsSimulator, tmp_path: Path
) -> None:
    set_dnd(hotel, simulator, True)
    with phones(hotel, tmp_path, ("1003", 300), ("1002", 600), ("1001", 450)) as phones_:
        room, desk, other = phones_
        other.send("call", to="1003")
        incoming = desk.wait(lambda e: e["ev"] == "incoming", timeout=15)
        assert incoming["remote"].startswith('"Guest, Mr." <sip:1001@'), incoming
        desk.send("answer")
        other.state("CONFIRMED")
        other.send("hangup")
        other.state("DISCONNECTED")
        desk.state("DISCONNECTED")
        assert not_rung(room)

        desk.send("call", to="1003")
        assert desk.state("DISCONNECTED", timeout=15)["code"] == 486
        assert not_rung(room)

        set_dnd(hotel, simulator, False)
        other.send("call", to="1003")
        room.answer(timeout=15)
        other.send("hangup")
        other.state("DISCONNECTED")
        room.state("DISCONNECTED")
    assert refused_reason(hotel, "1002") == {"sip_code": 486, "reason": "room-dnd"}


def test_a_wake_up_call_still_rings_a_room_with_dnd(
    hotel: DndHotelPbx, simulator: PmsSimulator, tmp_path: Path
) -> None:
    set_dnd(hotel, simulator, True)
    try:
        with phones(hotel, tmp_path, ("1003", 300), ("1002", 600)) as (room, desk):
            wake_up_at(simulator, "0102", 3)
            incoming = room.wait(lambda e: e["ev"] == "incoming", timeout=30)
            assert '"Wake-up call" <sip:wake-up@' in incoming["remote"], incoming
            room.send("answer")
            room.state("CONFIRMED")
            wait_for(lambda: recorded_enough(room, 1.0), 15, lambda: "the room heard nothing")
            room.send("hangup")
            room.state("DISCONNECTED")
            assert not_rung(desk)
        simulator.act(lambda core: core.check_out("0102"))
        wait_for(lambda: hotel.room("0102")["wake_ups"] == [], 10, hotel.output)
    finally:
        simulator.act(lambda core: core.check_in("0102", "Sleeper, Ms."))
        set_dnd(hotel, simulator, False)
