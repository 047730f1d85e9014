"""The SIP edge relays nothing to a trunk or another site that it should not.

A fake carrier (a UDP socket configured as the trunk) and a fake peer site (a UDP socket
nothing is configured for) listen while sipp sends forged in-dialog requests, preloaded
Routes and spoofed sources (scenarios in ``sipp/``); neither may receive a single datagram.
The same carrier does receive an authenticated extension's call, so the listener works.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pbx.harness import (
    Pbx,
    free_udp_tcp_port,
    no_daemons_left,
    phones,
    require_debs,
    sipp_media_port,
    wait_for,
)

SCENARIOS = Path(__file__).parent / "sipp"


class UdpListener:
    """A UDP socket on loopback standing in for a carrier or a peer site; keeps what arrives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.received.append(self.sock.recv(65535))
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture(scope="module")
def carrier() -> Iterator[UdpListener]:
    listener = UdpListener()
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(scope="module")
def peer_site() -> Iterator[UdpListener]:
    listener = UdpListener()
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, carrier: UdpListener) -> Iterator[Pbx]:
    require_debs()
    root = tmp_path_factory.mktemp("edge")
    dialplan = {
        "owned_numbers": ["+4930555000"],
        "trunks": [{"name": "carrier", "host": "127.0.0.1", "port": carrier.port}],
        "outbound": [{"name": "international", "pattern": "00.", "trunk": "carrier",
                      "cos": "international", "caller_id": "+4930555000"}],
        "default_cos": "international",
    }  # fmt: skip
    instance = Pbx(root, dialplan=dialplan, fr_timer_ms=1000)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(root)


def run_sipp(scenario: str, edge: Pbx, root: Path, *args: str, source: str = "127.0.0.1") -> str:
    """Run one of ``sipp/`` against the edge once from ``source``; fails unless it passes."""
    trace = root / f"{scenario}.log"
    command = [
        "sipp", "-sf", str(SCENARIOS / scenario), "-i", source, "-p", str(free_udp_tcp_port()),
        "-nostdin", "-timeout", "20s", "-m", "1", "-cp", str(free_udp_tcp_port()),
        "-mp", str(sipp_media_port()), "-trace_msg", "-message_file", str(trace), *args,
        f"127.0.0.1:{edge.sip_port}",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=root, capture_output=True, timeout=40, check=False)
    messages = trace.read_text(errors="replace") if trace.exists() else ""
    assert result.returncode == 0, f"{result.stdout[-2000:]!r}\n{messages}\n{edge.output()}"
    return messages


def test_forged_in_dialog_requests_are_refused_and_never_reach_the_carrier(
    edge: Pbx, carrier: UdpListener, peer_site: UdpListener, tmp_path: Path
) -> None:
    for target in (carrier, peer_site):
        messages = run_sipp("forged_in_dialog.xml", edge, tmp_path, "-key", "carrier",
                            target.address, source="127.0.0.9")  # fmt: skip
        assert messages.count("SIP/2.0 481") == 5
    assert carrier.received == []
    assert peer_site.received == []


def test_unauthenticated_and_spoofed_invites_never_reach_the_carrier(
    edge: Pbx, carrier: UdpListener, tmp_path: Path
) -> None:
    messages = run_sipp("untrusted_initial.xml", edge, tmp_path, "-key", "carrier",
                        carrier.address, source="127.0.0.10")  # fmt: skip
    assert messages.count("SIP/2.0 407") == 2
    assert "SIP/2.0 403" in messages
    assert carrier.received == []


def test_an_authenticated_extension_reaches_the_carrier(
    edge: Pbx, carrier: UdpListener, tmp_path: Path
) -> None:
    before = len(carrier.received)
    with phones(edge, tmp_path, ("1001", 1000)) as (alice,):
        alice.send("call", to="00442071234567")
        wait_for(lambda: len(carrier.received) > before, 10, edge.output)
        alice.send("hangup")
    assert carrier.received[before].startswith(b"INVITE sip:00442071234567@127.0.0.1:")


def test_a_callee_re_invite_and_bye_between_extensions_are_relayed(
    edge: Pbx, tmp_path: Path
) -> None:
    with phones(edge, tmp_path, ("1002", 600), ("1003", 300)) as (bob, carol):
        bob.send("call", to="1003")
        carol.answer()
        bob.state("CONFIRMED")
        carol.send("hold")
        bob.wait(lambda e: e["ev"] == "media" and e.get("status") == "remote-hold")
        carol.send("hangup")
        bob.state("DISCONNECTED")
    cdr = edge.cdr_for(lambda c: c["callee"]["number"] == "1003")
    assert (cdr["disposition"], cdr["hangup_side"]) == ("answered", "callee")
