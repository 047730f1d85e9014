"""The serial variant over a pty pair: LRC, NAK -> resend, ENQ on timeout, then an active link.

The appliance side is the real asyncio adapter with SerialChannel and SerialProtocol on the
pty's slave; a scripted PMS on the master checks every byte it gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import select
import time
import tty

from drivers.fias.client import FiasClient, SerialChannel
from drivers.fias.grammar import parse_record
from drivers.fias.link import LINK_RECORDS, FiasLink, LinkEvent, LinkState, LinkUp
from drivers.fias.serial import ACK, ENQ, NAK, STX, SerialProtocol, frame

STAMP = {"DA": "001015", "TI": "123046"}


class LinePeer:
    """The PMS end of the line: reads control bytes and framed records with deadlines."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def item(self, within: float = 10.0) -> bytes:
        deadline = time.monotonic() + within
        while True:
            found = self._take()
            if found is not None:
                return found
            left = deadline - time.monotonic()
            assert left > 0, f"nothing complete within {within}s (have {bytes(self.buffer)!r})"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                self.buffer += os.read(self.fd, 4096)

    def silent_for(self, seconds: float) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], seconds)
        return os.read(self.fd, 4096) if ready else b""

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def _take(self) -> bytes | None:
        if not self.buffer:
            return None
        if self.buffer[0] != STX:
            byte = bytes(self.buffer[:1])
            del self.buffer[:1]
            return byte
        end = self.buffer.find(b"\x03")
        if end < 0 or len(self.buffer) < end + 2:
            return None
        data = bytes(self.buffer[: end + 2])
        del self.buffer[: end + 2]
        return data


def pms_script(fd: int) -> list[str]:
    peer, log = LinePeer(fd), []
    ls = frame(parse_record(b"LS|DA001015|TI123045|"))
    peer.write(ls[:-1] + bytes((ls[-1] ^ 0x55,)))
    assert peer.item() == bytes((NAK,)), "a bad LRC is refused"
    log.append("nak-for-bad-lrc")
    peer.write(ls)
    assert peer.item() == bytes((ACK,))
    ld = peer.item()
    assert ld == frame(parse_record(b"LD|DA001015|TI123046|V#1.0|IFPB|"))
    peer.write(bytes((NAK,)))
    assert peer.item() == ld, "NAK makes the sender resend the same frame"
    log.append("resent-after-nak")
    peer.write(bytes((ACK,)))
    first_lr = peer.item()
    assert first_lr == frame(parse_record(b"LR|RIGI|FLRNG#GNGFGLGVGGGAGDGSSF|"))
    started = time.monotonic()
    assert peer.silent_for(2.0) == b"", "nothing before the ACK timeout"
    assert peer.item() == bytes((ENQ,)), "silence is followed by ENQ"
    waited = time.monotonic() - started
    log.append(f"enq-after-{round(waited)}s")
    peer.write(bytes((ACK,)))
    for _ in LINK_RECORDS[1:]:
        assert peer.item()[1:3] == b"LR"
        peer.write(bytes((ACK,)))
    assert peer.item()[1:3] == b"LA"
    peer.write(bytes((ACK,)))
    peer.write(frame(parse_record(b"LA|DA001015|TI123050|")))
    assert peer.item() == bytes((ACK,))
    log.append("link-active")
    return log


async def test_serial_link_recovers_from_nak_and_silence_and_comes_up() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    events: list[LinkEvent] = []
    seen = asyncio.Event()

    def on_event(event: LinkEvent) -> None:
        events.append(event)
        seen.set()

    link = FiasLink(time.monotonic, lambda: dict(STAMP), rng=random.Random(1))
    client = FiasClient(
        link,
        lambda: SerialProtocol(time.monotonic),
        SerialChannel.opener(os.ttyname(slave)),
        on_event=on_event,
        tick=0.1,
    )
    task = asyncio.create_task(client.run())
    try:
        log = await asyncio.wait_for(asyncio.to_thread(pms_script, master), 60)
        await asyncio.wait_for(seen.wait(), 10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()
        os.close(master)
        os.close(slave)
    assert log == ["nak-for-bad-lrc", "resent-after-nak", "enq-after-3s", "link-active"]
    assert events == [LinkUp()]
    assert link.state is LinkState.ACTIVE
