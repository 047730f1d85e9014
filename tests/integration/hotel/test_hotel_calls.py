"""Rooms in the call path, end to end: the whole hotel appliance (Kamailio, rtpengine, the PMS
link) against the PMS simulator over TCP, with pjsua2 phones and a sipp trunk.

Room 0101 is extension 1001, room 0102 is 1003; 1002 is the front desk. Check-in on the PMS
opens the room's line and names the guest in the From of its calls; check-out bars it again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.fias.simulator.core import PmsCore
from drivers.fias.simulator.server import PmsSimulator
from tests.integration.pbx.harness import (
    Pbx,
    free_udp_tcp_port,
    media,
    no_daemons_left,
    phones,
    require_debs,
    sipp_media_port,
    wait_for,
)
from tests.integration.pbx.test_dialplan_calls import TRUNK_UAS
from tests.integration.pbx.test_ivr_flows import heard_samples, recorded_enough, spoken
from tests.procs import ROOT

OWNED = "+4930555000"
ROOMS = {"0101": "1001", "0102": "1003"}
OUTSIDE = "0301234567"


class HotelPbx(Pbx):
    """The whole appliance (profile hotel, PBX on) as a process, linked to the simulator."""

    def __init__(self, root: Path, pms_port: int, trunk_port: int) -> None:
        dialplan = {
            "owned_numbers": [OWNED],
            "trunks": [{"name": "carrier", "host": "127.0.0.1", "port": trunk_port}],
            "outbound": [{"name": "national", "pattern": "0Z.", "trunk": "carrier", "strip": 1,
                          "prepend": "+49", "caller_id": OWNED}],
            "class_of_service": dict.fromkeys(ROOMS.values(), "international"),
        }  # fmt: skip
        super().__init__(root, enabled=True, dialplan=dialplan, media=media(1))
        config = yaml.safe_load(self.config.read_text())
        del config["test_api_port"]
        config["profile"] = "hotel"
        config["http"] = {"host": "127.0.0.1", "port": self.api_port}
        config["site"] = {"timezone": "UTC"}
        config["hotel"] = {
            "pms": {"port": pms_port, "reconnect_min_s": 0.2, "reconnect_max_s": 0.5},
            "rooms": [{"room": room, "extension": ext} for room, ext in ROOMS.items()],
            "wake_up": {"retries": 1, "retry_interval_s": 5, "front_desk": "1002"},
        }
        self.config.write_text(yaml.safe_dump(config))

    def start(self, timeout: float = 40) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "appliance.cli.main", "appliance", "run",
                 "--config", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        wait_for(self.linked, timeout, self.output)

    def linked(self) -> bool:
        """The PMS link is active and the resync stored every room."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"appliance exited:\n{self.output()}")
        with contextlib.suppress(OSError):
            status, body = self.api("GET", "/hotel/pms")
            return status == 200 and body["state"] == "active" and body["rooms"] == 2
        return False

    def room(self, number: str) -> dict[str, Any]:
        status, body = self.api("GET", "/hotel/rooms")
        assert status == 200, body
        return next(r for r in body["rooms"] if r["room"] == number)


@pytest.fixture(scope="module")
def simulator() -> Iterator[PmsSimulator]:
    sim = PmsSimulator(PmsCore(rooms={room: [] for room in ROOMS}))
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def trunk_port() -> int:
    return free_udp_tcp_port(15000, 17999)


@pytest.fixture(scope="module")
def hotel(
    tmp_path_factory: pytest.TempPathFactory, simulator: PmsSimulator, trunk_port: int
) -> Iterator[HotelPbx]:
    require_debs()
    root = tmp_path_factory.mktemp("hotel-pbx")
    instance = HotelPbx(root, simulator.port, trunk_port)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(root)


@contextlib.contextmanager
def trunk(root: Path, port: int) -> Iterator[Path]:
    """A sipp trunk answering one call; yields its message log."""
    scenario, log = root / "trunk.xml", root / "trunk.log"
    scenario.write_text(TRUNK_UAS)
    with (root / "trunk.out").open("wb") as out:
        proc = subprocess.Popen(
            ["sipp", "-i", "127.0.0.1", "-nostdin", "-timeout", "20s", "-m", "1",
             "-cp", str(free_udp_tcp_port()), "-mp", str(sipp_media_port()),
             "-sf", str(scenario), "-p", str(port), "-trace_msg", "-message_file", str(log)],
            cwd=root, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield log
        assert proc.wait(timeout=25) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def wait_for_postings(simulator: PmsSimulator, kind: str) -> list[dict[str, Any]]:
    """The postings of ``kind`` (e.g. ``|PTT|``) the simulator booked, once there is one."""

    def booked() -> list[dict[str, Any]]:
        postings = simulator.query(PmsCore.snapshot)["postings"]
        return [p for p in postings if kind in p["record"]]

    wait_for(lambda: bool(booked()), 10, lambda: str(simulator.query(PmsCore.snapshot)))
    return booked()


def refused_reason(hotel: HotelPbx, caller: str) -> Any:
    cdr = hotel.cdr_for(
        lambda c: c["caller"]["number"] == caller and c["disposition"] != "answered"
    )
    return cdr["hangup_cause"]


def test_a_vacant_room_cannot_dial_out_but_can_call_the_front_desk(
    hotel: HotelPbx, tmp_path: Path
) -> None:
    with phones(hotel, tmp_path, ("1003", 300), ("1002", 600)) as (room, desk):
        room.send("call", to=OUTSIDE)
        assert room.state("DISCONNECTED")["code"] == 403
        room.send("call", to="1002")
        incoming = desk.wait(lambda e: e["ev"] == "incoming")
        assert incoming["remote"].startswith("<sip:1003@"), incoming
        desk.send("answer")
        room.state("CONFIRMED")
        room.send("hangup")
        room.state("DISCONNECTED")
        desk.state("DISCONNECTED")
    assert refused_reason(hotel, "1003") == {"sip_code": 403, "reason": "room-barred"}


def test_check_in_names_the_guest_and_opens_the_line_and_check_out_bars_it(
    hotel: HotelPbx, simulator: PmsSimulator, trunk_port: int, tmp_path: Path
) -> None:
    simulator.act(lambda core: core.check_in("0101", "Guest, Mr.", "GE"))
    wait_for(lambda: hotel.room("0101")["guests"] != [], 10, hotel.output)
    assert hotel.room("0101")["cos"] == "international"
    with phones(hotel, tmp_path, ("1001", 1000), ("1002", 600)) as (room, desk):
        room.send("call", to="1002")
        incoming = desk.wait(lambda e: e["ev"] == "incoming")
        assert incoming["remote"].startswith('"Guest, Mr." <sip:1001@'), incoming
        desk.send("answer")
        room.state("CONFIRMED")
        room.send("hangup")
        room.state("DISCONNECTED")
        desk.state("DISCONNECTED")
        with trunk(tmp_path, trunk_port) as log:
            room.send("call", to=OUTSIDE)
            room.state("CONFIRMED")
            room.send("hangup")
            room.state("DISCONNECTED")
        assert "INVITE sip:+49301234567@" in log.read_text()
        [charge] = wait_for_postings(simulator, "|PTT|")
        assert (charge["room"], charge["status"]) == ("0101", "OK")
        assert "|DD0301234567|" in charge["record"], charge
        assert "|DU0000" in charge["record"], charge
        simulator.act(lambda core: core.check_out("0101"))
        wait_for(lambda: hotel.room("0101")["guests"] == [], 10, hotel.output)
        assert hotel.room("0101")["cos"] == "internal"
        room.send("call", to=OUTSIDE)
        assert room.state("DISCONNECTED")["code"] == 403
    assert refused_reason(hotel, "1001") == {"sip_code": 403, "reason": "room-barred"}


def test_room_state_survives_a_restart_without_a_second_resync(
    hotel: HotelPbx, simulator: PmsSimulator
) -> None:
    simulator.act(lambda core: core.check_in("0102", "Gäst, Fr.", "GE"))
    wait_for(lambda: hotel.room("0102")["guests"] != [], 10, hotel.output)
    resyncs = sum(r.startswith("DR|") for r in simulator.query(PmsCore.snapshot)["received"])
    hotel.stop()
    hotel.start()
    assert hotel.room("0102")["guests"][0]["name"] == "Gäst, Fr."
    received = simulator.query(PmsCore.snapshot)["received"]
    assert sum(r.startswith("DR|") for r in received) == resyncs


def test_room_status_and_minibar_codes_from_the_room_phone_reach_the_pms(
    hotel: HotelPbx, simulator: PmsSimulator, tmp_path: Path
) -> None:
    with phones(hotel, tmp_path, ("1003", 300)) as (room,):
        for code, answer in (("*73", 603), ("*8123*2", 603), ("*79", 404), ("*8", 404)):
            room.send("call", to=code)
            assert room.state("DISCONNECTED")["code"] == answer, code

    [posting] = wait_for_postings(simulator, "|PTM|")
    assert (posting["room"], posting["status"]) == ("0102", "OK")
    assert all(f in posting["record"] for f in ("|PTM|", "|MA123|", "|M#2|")), posting
    received = simulator.query(PmsCore.snapshot)["received"]
    assert [r for r in received if r.startswith("RE|")] == ["RE|RN0102|RS3|"]


def wake_up_at(simulator: PmsSimulator, room: str, seconds: float) -> str:
    """A WR for ``room`` due in ``seconds``; returns its DA|TI as the WA must echo them."""
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    date, time = at.strftime("%y%m%d"), at.strftime("%H%M%S")
    simulator.act(lambda core: core.wake_up(room, date, time))
    return f"DA{date}|TI{time}|"


def answers(simulator: PmsSimulator) -> list[str]:
    return [r for r in simulator.query(PmsCore.snapshot)["received"] if r.startswith("WA|")]


def test_a_wake_up_call_speaks_to_the_guest_who_confirms_and_the_pms_gets_one_answer(
    hotel: HotelPbx, simulator: PmsSimulator, tmp_path: Path
) -> None:
    before = answers(simulator)
    with phones(hotel, tmp_path, ("1003", 300)) as (room,):
        stamp = wake_up_at(simulator, "0102", 3)
        wait_for(lambda: hotel.room("0102")["wake_ups"] != [], 10, hotel.output)
        incoming = room.wait(lambda e: e["ev"] == "incoming", timeout=30)
        assert '"Wake-up call" <sip:wake-up@' in incoming["remote"], incoming
        room.send("answer")
        room.state("CONFIRMED")
        wait_for(lambda: recorded_enough(room, 2.5), 15, lambda: "the room heard nothing")
        room.send("dtmf", digits="1")
        room.state("DISCONNECTED")
    rate, samples = heard_samples(room)
    assert spoken(samples, rate, 0.2, 2.4), "no spoken wake-up message"
    wait_for(lambda: len(answers(simulator)) > len(before), 10, hotel.output)
    assert answers(simulator)[len(before) :] == [f"WA|RN0102|{stamp}ASOK|"]
    assert hotel.room("0102")["wake_ups"] == []


def test_a_busy_room_is_retried_then_reported_once_and_the_front_desk_is_called(
    hotel: HotelPbx, simulator: PmsSimulator, tmp_path: Path
) -> None:
    before = answers(simulator)
    with phones(hotel, tmp_path, ("1003", 300), ("1002", 600)) as (room, desk):
        stamp = wake_up_at(simulator, "0102", 2)
        for _ in range(2):
            room.wait(lambda e: e["ev"] == "incoming", timeout=30)
            room.send("busy")
        notice = desk.wait(lambda e: e["ev"] == "incoming", timeout=30)
        assert '"Wake-up call failed" <sip:wake-up@' in notice["remote"], notice
        desk.send("answer")
        desk.state("DISCONNECTED", timeout=30)
    wait_for(lambda: len(answers(simulator)) > len(before), 10, hotel.output)
    assert answers(simulator)[len(before) :] == [f"WA|RN0102|{stamp}ASBY|"]


def test_a_wake_up_survives_kill_9_and_is_answered_once(
    hotel: HotelPbx, simulator: PmsSimulator, tmp_path: Path
) -> None:
    before = answers(simulator)
    # Due once the restarted appliance is up and the phone registered again.
    stamp = wake_up_at(simulator, "0102", 45)
    wait_for(lambda: hotel.room("0102")["wake_ups"] != [], 10, hotel.output)
    hotel.kill9()
    hotel.start()
    with phones(hotel, tmp_path, ("1003", 300)) as (room,):
        room.wait(lambda e: e["ev"] == "incoming", timeout=60)
        room.send("answer")
        room.state("CONFIRMED")
        wait_for(lambda: recorded_enough(room, 2.5), 15, lambda: "the room heard nothing")
        room.send("dtmf", digits="1")
        room.state("DISCONNECTED")
    rate, samples = heard_samples(room)
    assert spoken(samples, rate, 0.2, 2.4), "no spoken wake-up message"
    wait_for(lambda: len(answers(simulator)) > len(before), 10, hotel.output)
    assert answers(simulator)[len(before) :] == [f"WA|RN0102|{stamp}ASOK|"]


def test_the_pms_lights_and_check_out_darkens_the_message_lamp_of_the_room_phone(
    hotel: HotelPbx, simulator: PmsSimulator, tmp_path: Path
) -> None:
    simulator.act(lambda core: core.check_in("0101", "Lamp, Ms."))
    wait_for(lambda: hotel.room("0101")["guests"] != [], 10, hotel.output)
    with phones(hotel, tmp_path, ("1001", 300)) as (room,):
        assert simulator.send_raw(b"\x02RE|RN0101|MLY|\x03")
        assert room.wait(lambda e: e["ev"] == "mwi", timeout=10)["waiting"] is True
        assert hotel.room("0101")["message_lamp"] is True
        simulator.act(lambda core: core.check_out("0101"))
        assert room.wait(lambda e: e["ev"] == "mwi", timeout=10)["waiting"] is False
