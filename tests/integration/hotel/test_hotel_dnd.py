"""DND in the call path, end to end: the hotel appliance, the PMS simulator, pjsua2 phones.

Room 0101 is extension 1001, room 0102 is 1003; 1002 is the front desk, which takes the
calls of a room with DND set (``hotel.dnd.action: front-desk``). The PMS sets and clears
DND with ``RE|RN..|DN..|``, the guest with the room phone's codes (``*65`` / ``*66``, confirmed
by a prompt a media worker plays), which reach the PMS as door-sign statuses (``RS8`` /
``RS10``); a wake-up call still rings the room. Ring group 600 is room 0102 and the front
desk, 601 both rooms.
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
from tests.integration.pbx.test_media import PROMPT_HZ, heard

STX, ETX = b"\x02", b"\x03"


class DndHotelPbx(HotelPbx):
    """The hotel appliance with DND calls going to the front desk, a confirmation prompt
    after a room code, and a ring group of both rooms and the front desk."""

    def __init__(self, root: Path, pms_port: int, trunk_port: int) -> None:
        super().__init__(root, pms_port, trunk_port)
        config = yaml.safe_load(self.config.read_text())
        config["hotel"]["dnd"] = {"action": "front-desk", "front_desk": "1002"}
        config["hotel"]["codes"] = {"accepted": "announce:done"}
        config["pbx"]["media"]["prompts"] = {"done": {"tone_hz": PROMPT_HZ, "seconds": 3.0}}
        config["pbx"]["dialplan"]["ring_groups"] = [
            {"number": "600", "members": ["1003", "1002"]},
            {"number": "601", "members": ["1001", "1003"]},
        ]
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


def door_signs(simulator: PmsSimulator) -> list[str]:
    received = simulator.query(PmsCore.snapshot)["received"]
    return [r for r in received if r.startswith("RE|")]


def folder(root: Path, name: str) -> Path:
    """A folder of its own for the recordings of one set of phones."""
    path = root / name
    path.mkdir()
    return path


def dial_code(room: Phone, code: str) -> None:
    """The room dials a code and hears something (``heard`` once the phone is closed)."""
    room.send("call", to=code)
    room.state("CONFIRMED", timeout=15)
    wait_for(lambda: recorded_enough(room, 1.5), 15, lambda: "the room heard nothing")
    room.send("hangup")
    room.state("DISCONNECTED", timeout=15)


def test_the_guest_sets_dnd_from_the_room_phone_the_pms_gets_the_door_sign(
    hotel: DndHotelPbx, simulator: PmsSimulator, tmp_path: Path
) -> None:
    before = door_signs(simulator)
    with phones(hotel, folder(tmp_path, "on"), ("1003", 300)) as (room,):
        dial_code(room, "*65")
    assert heard(room) == PROMPT_HZ, "the confirmation prompt"
    wait_for(lambda: door_signs(simulator)[len(before) :] == ["RE|RN0102|RS8|"], 10,
             lambda: str(door_signs(simulator)))  # fmt: skip
    assert (hotel.room("0102")["dnd"], hotel.room("0102")["door_sign"]) == (True, True)
    with phones(hotel, folder(tmp_path, "calls"), ("1003", 300), ("1002", 600), ("1001", 450)) as (
        room, desk, other
    ):  # fmt: skip
        other.send("call", to="1003")
        incoming = desk.wait(lambda e: e["ev"] == "incoming", timeout=15)
        assert incoming["remote"].startswith('"Guest, Mr." <sip:1001@'), incoming
        other.send("hangup")
        other.state("DISCONNECTED")
        desk.state("DISCONNECTED")
        assert not_rung(room)
    with phones(hotel, folder(tmp_path, "off"), ("1003", 300)) as (room,):
        dial_code(room, "*66")
    assert heard(room) == PROMPT_HZ, "the confirmation prompt"
    wait_for(lambda: door_signs(simulator)[len(before) :] == ["RE|RN0102|RS8|", "RE|RN0102|RS10|"],
             10, lambda: str(door_signs(simulator)))  # fmt: skip
    assert hotel.room("0102")["dnd"] is False
    with phones(hotel, folder(tmp_path, "again"), ("1003", 300), ("1001", 450)) as (room, other):
        other.send("call", to="1003")
        room.answer(timeout=15)
        other.send("hangup")
        other.state("DISCONNECTED")
        room.state("DISCONNECTED")


def test_a_ring_group_skips_a_room_with_dnd_and_rings_the_desk_when_all_rooms_are(
    hotel: DndHotelPbx, simulator: PmsSimulator, tmp_path: Path
) -> None:
    set_dnd(hotel, simulator, True)
    try:
        with phones(hotel, tmp_path, ("1003", 300), ("1002", 600), ("1001", 450)) as phones_:
            room, desk, other = phones_
            other.send("call", to="600")
            desk.answer(timeout=15)
            other.state("CONFIRMED")
            other.send("hangup")
            other.state("DISCONNECTED")
            desk.state("DISCONNECTED")
            assert not_rung(room)

            assert simulator.send_raw(STX + b"RE|RN0101|DNY|" + ETX)
            wait_for(lambda: hotel.room("0101")["dnd"] is True, 10, hotel.output)
            other.send("call", to="601")
            incoming = desk.wait(lambda e: e["ev"] == "incoming", timeout=15)
            assert incoming["remote"].startswith('"Guest, Mr." <sip:1001@'), incoming
            other.send("hangup")
            other.state("DISCONNECTED")
            desk.state("DISCONNECTED")
            assert not_rung(room)
    finally:
        assert simulator.send_raw(STX + b"RE|RN0101|DNN|" + ETX)
        set_dnd(hotel, simulator, False)


def link_state(hotel: DndHotelPbx) -> str:
    status, body = hotel.api("GET", "/hotel/pms")
    assert status == 200, body
    return str(body["state"])


def test_a_door_sign_owed_while_the_pms_is_away_survives_kill_9_and_is_sent_once(
    hotel: DndHotelPbx, simulator: PmsSimulator, tmp_path: Path
) -> None:
    simulator.act(lambda core: core.link_end())
    wait_for(lambda: link_state(hotel) == "ended", 10, hotel.output)
    before = door_signs(simulator)
    with phones(hotel, folder(tmp_path, "on"), ("1003", 300)) as (room,):
        dial_code(room, "*65")
    assert heard(room) == PROMPT_HZ, "the confirmation prompt"
    assert hotel.room("0102")["dnd"] is True
    assert door_signs(simulator) == before, "nothing is sent while the link is ended"
    hotel.kill9()
    assert door_signs(simulator) == before
    hotel.start()
    wait_for(lambda: door_signs(simulator)[len(before) :] == ["RE|RN0102|RS8|"], 10,
             lambda: str(door_signs(simulator)))  # fmt: skip
    with phones(hotel, folder(tmp_path, "off"), ("1003", 300)) as (room,):
        dial_code(room, "*66")
    wait_for(lambda: door_signs(simulator)[len(before) :] == ["RE|RN0102|RS8|", "RE|RN0102|RS10|"],
             10, lambda: str(door_signs(simulator)))  # fmt: skip
