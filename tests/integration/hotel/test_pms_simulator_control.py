"""The PMS simulator's HTTP control, seen from a raw FIAS client socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from drivers.fias.grammar import Record, parse_record
from drivers.fias.protocol import FiasProtocol
from drivers.fias.simulator.cli import parse_rooms
from drivers.fias.simulator.control import ControlServer
from drivers.fias.simulator.core import PmsCore
from drivers.fias.simulator.server import PmsSimulator


class RawClient:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.protocol = FiasProtocol()

    def record(self) -> Record:
        while (record := self.protocol.next_event()) is None:
            data = self.sock.recv(4096)
            assert data, "simulator closed the connection"
            self.protocol.receive_data(data)
        return record

    def send(self, text: bytes) -> None:
        self.sock.sendall(self.protocol.send(parse_record(text)))


@pytest.fixture
def sim() -> Iterator[tuple[RawClient, str]]:
    simulator = PmsSimulator(PmsCore(rooms={room: [] for room in parse_rooms("0101-0102")}))
    simulator.start()
    control = ControlServer(simulator)
    control.start()
    client = RawClient(simulator.port)
    try:
        yield client, control.url
    finally:
        client.sock.close()
        control.stop()
        simulator.stop()


def test_control_actions_reach_the_client_as_fias_records(sim: tuple[RawClient, str]) -> None:
    client, url = sim
    assert client.record().record_id == "LS"
    client.send(b"LA|DA001015|TI123046|")
    assert client.record().record_id == "LA"
    httpx.post(f"{url}/rooms/0101/check-in", json={"name": "Guest, Mr."}, timeout=5)
    assert bytes(client.record()) == b"GI|RN0101|G#10001|GNGuest, Mr.|GLEA|GSN|"
    httpx.post(f"{url}/rooms/0101/wake-up", json={"date": "261208", "time": "070000"}, timeout=5)
    assert bytes(client.record()) == b"WR|RN0101|DA261208|TI070000|"
    httpx.post(f"{url}/night-audit/start", timeout=5)
    assert client.record().record_id == "NS"
    client.send(b"PS|RN0101|PTC|TA100|P#1|")
    assert bytes(client.record()) == b"PA|RN0101|ASNA|P#1|DA|TI|CTnight audit|"
    httpx.post(f"{url}/night-audit/end", timeout=5)
    assert client.record().record_id == "NE"
    httpx.post(f"{url}/rooms/0101/check-out", timeout=5)
    assert bytes(client.record()) == b"GO|RN0101|G#10001|GSN|"
    state = httpx.get(f"{url}/state", timeout=5).json()
    assert state["received"] == ["LA|DA001015|TI123046|", "PS|RN0101|PTC|TA100|P#1|"]
    assert state["postings"] == []
    assert state["rooms"] == {"0101": [], "0102": []}


def test_control_errors_carry_an_error_id(sim: tuple[RawClient, str]) -> None:
    _client, url = sim
    missing = httpx.post(f"{url}/rooms/0101/teleport", timeout=5)
    assert (missing.status_code, missing.json()["error_id"]) == (404, "not-found")
    bad = httpx.post(f"{url}/answers", json={"mode": "sometimes"}, timeout=5)
    assert (bad.status_code, bad.json()["error_id"]) == (400, "bad-request")


def test_room_ranges_keep_their_leading_zeros() -> None:
    assert parse_rooms("0098-0101,330") == ["0098", "0099", "0100", "0101", "330"]
    with pytest.raises(ValueError, match="FIRST-LAST"):
        parse_rooms("105-101")
