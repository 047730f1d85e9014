"""The PBX benchmark's probe of rtpengine's control link: pings timed, late ones counted."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bench.ng_probe import NgProbe, NgRoundTrips
from drivers.sip.ng import bencode

pytestmark = pytest.mark.unit


@pytest.fixture
def relay() -> Iterator[tuple[socket.socket, list[float]]]:
    """A UDP responder answering each ping with pong after the next delay in its list
    (stale cookies first), or never once the list is empty."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    delays: list[float] = []
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.05)
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            if delays:
                time.sleep(delays.pop(0))
                cookie = data.split(b" ", 1)[0]
                sock.sendto(b"stale " + bencode({"result": "pong"}), peer)
                sock.sendto(cookie + b" " + bencode({"result": "pong"}), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock, delays
    stop.set()
    thread.join(2)
    sock.close()


def test_pings_answered_late_and_not_at_all_are_counted(
    relay: tuple[socket.socket, list[float]],
) -> None:
    sock, delays = relay
    delays.extend([0.0, 0.0, 0.3])
    with NgProbe(sock.getsockname()[1], interval_s=0.05, timeout_s=0.5) as probe:
        deadline = time.monotonic() + 10
        while probe.trips.lost == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    trips = probe.trips
    assert len(trips.answered_ms) == 3
    assert trips.lost >= 1
    assert trips.over(250) == 1 + trips.lost
    assert 300 <= max(trips.answered_ms) < 500
    assert "3 answered" in trips.text()


def test_round_trip_percentiles() -> None:
    trips = NgRoundTrips(answered_ms=[float(ms) for ms in range(1, 101)])
    assert trips.percentile(0.5) == 51
    assert trips.percentile(0.99) == 100
    assert NgRoundTrips().percentile(0.99) == 0
