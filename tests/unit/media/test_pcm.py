"""The GSM bridge's PCM link on a real pty: buffering, drift, underrun, loss, frame reads."""

from __future__ import annotations

import contextlib
import os
import tty
from collections.abc import Iterator

import pjsua2 as pj
import pytest

from drivers.media.pcm import PcmLink, open_tty, vector_bytes

FRAME = 320


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    path = os.ttyname(slave)
    try:
        yield master, path
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def frame(n: int) -> bytes:
    return bytes([n % 256]) * FRAME


def test_stale_bytes_are_flushed_when_the_tty_is_opened(pty: tuple[int, str]) -> None:
    master, path = pty
    os.write(master, frame(9) * 3)
    link = PcmLink(open_tty(path), FRAME, target=1)
    assert link.downlink() == link.silence
    link.close()


def test_audio_starts_after_the_target_depth_and_keeps_order(pty: tuple[int, str]) -> None:
    master, path = pty
    link = PcmLink(open_tty(path), FRAME, target=2)
    os.write(master, frame(1))
    assert link.downlink() == link.silence
    os.write(master, frame(2))
    assert link.downlink() == frame(1)
    os.write(master, frame(3))
    assert link.downlink() == frame(2)
    assert link.counters.underruns == 0
    link.close()


def test_underrun_inserts_one_silence_frame_and_waits_for_the_target(
    pty: tuple[int, str],
) -> None:
    master, path = pty
    link = PcmLink(open_tty(path), FRAME, target=1)
    os.write(master, frame(1))
    assert link.downlink() == frame(1)
    assert link.downlink() == link.silence
    assert link.counters.underruns == 1
    os.write(master, frame(2)[:100])
    assert link.downlink() == link.silence
    assert link.counters.underruns == 1
    os.write(master, frame(2)[100:])
    assert link.downlink() == frame(2)


def test_a_modem_running_fast_is_trimmed_at_frame_edges_once_a_second(
    pty: tuple[int, str],
) -> None:
    master, path = pty
    link = PcmLink(open_tty(path), FRAME, target=2, limit=20)
    os.write(master, b"".join(frame(i) for i in range(6)))
    for i in range(49):
        os.write(master, frame(100 + i))
        link.downlink()
    assert link.counters.trimmed == 0
    os.write(master, frame(200))
    served = link.downlink()
    assert link.counters.trimmed == 5
    assert served == frame(148)
    assert link.depth == 1


def test_a_stalled_bridge_drops_down_to_the_target_at_once(pty: tuple[int, str]) -> None:
    master, path = pty
    link = PcmLink(open_tty(path), FRAME, target=2, limit=5)
    os.write(master, b"".join(frame(i) for i in range(9)))
    assert link.downlink() == frame(7)
    assert link.counters.trimmed == 7


def test_uplink_frames_reach_the_modem_whole(pty: tuple[int, str]) -> None:
    master, path = pty
    link = PcmLink(open_tty(path), FRAME)
    link.uplink(frame(5))
    link.uplink(b"short")
    assert os.read(master, 4096) == frame(5)
    assert link.counters.uplink_dropped == 0


def test_a_vanished_device_is_reported_and_served_as_silence(pty: tuple[int, str]) -> None:
    master, path = pty
    link = PcmLink(open_tty(path), FRAME, target=1)
    os.close(master)
    assert link.downlink() == link.silence
    link.uplink(frame(1))
    assert link.lost


def test_vector_bytes_reads_a_byte_vector_without_walking_it() -> None:
    data = bytes(range(256)) + bytes(64)
    assert vector_bytes(pj.ByteVector(data)) == data
    assert vector_bytes(pj.ByteVector()) == b""
