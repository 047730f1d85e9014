"""A media worker survives room links made and taken apart while its bridge carries audio.

A link's port is called by the bridge's clock thread every 20 ms. Dropping the port's last
reference used to let SWIG delete it from inside the Python object's deallocation, while the
clock thread, holding the port's lock, waited for the GIL to call that half-freed object: the
worker died with SIGSEGV, now and then, where a room was relinked (a hub worker died). Here the
real worker process takes bursts of link, join and unlink commands, which keep its main thread
busy in Python while two other links of the room are connected to each new one.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.media.protocol import (
    Event,
    Quit,
    Ready,
    RoomLinkEvent,
    RoomLinkOpen,
    RoomUnlink,
    pack_command,
)
from tests.integration.pbx.harness import free_udp_tcp_port
from tests.integration.pbx.test_worker_loads import Events, start_worker

BURSTS = 6
LINKS_PER_BURST = 300
# Links open at once: each is unlinked this many links after it was made, so it lives through
# some of the bridge's ticks.
OPEN = 40


@pytest.fixture
def peer() -> Iterator[str]:
    """A UDP socket standing in for the other workers' ends of every link."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def _burst(first: int, peer: str) -> bytes:
    commands = b""
    for index in range(first, first + LINKS_PER_BURST):
        link = f"x{index}"
        commands += pack_command(RoomLinkOpen(room="r", link=link))
        commands += pack_command(RoomLinkOpen(room="r", link=link, peer=peer))
        commands += pack_command(RoomUnlink(link=f"x{index - OPEN}"))
    return commands


def _opened(link: str) -> Callable[[Event], bool]:
    return lambda event: isinstance(event, RoomLinkEvent) and event.link == link


def test_links_made_and_taken_apart_under_audio_leave_the_worker_running(
    tmp_path: Path, peer: str
) -> None:
    proc, log = start_worker(tmp_path, free_udp_tcp_port(), free_udp_tcp_port())
    assert proc.stdin is not None
    events = Events(proc)
    try:
        events.until(lambda e: isinstance(e, Ready), timeout=60)
        for name in ("keep-a", "keep-b"):
            proc.stdin.write(pack_command(RoomLinkOpen(room="r", link=name, peer=peer)))
        for burst in range(BURSTS):
            proc.stdin.write(_burst(burst * LINKS_PER_BURST, peer))
            proc.stdin.flush()
            events.until(_opened(f"x{(burst + 1) * LINKS_PER_BURST - 1}"), timeout=60)
        proc.stdin.write(pack_command(Quit()))
        proc.stdin.flush()
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert "Fatal Python error" not in log.read_text()
