"""One simulated modem on pty pairs: the AT and voice ptys, by-id links and PCM output.

Each modem gets an AT pty and (when the model has one) a voice pty, plus udev-style by-id
symlinks in a directory the simulator owns, so a driver can find a modem again after it
re-enumerates under new ``/dev/pts`` numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import tty
from collections.abc import Callable
from pathlib import Path

from drivers.modem.simulator.commands import SimulatedModem
from drivers.modem.simulator.dialects import Dialect
from drivers.modem.simulator.state import Faults, SimulatorConfig, make_sims, parse_faults

log = logging.getLogger(__name__)
FRAME_SECONDS = 0.02
UPLINK_TAIL_BYTES = 32000  # the last second of uplink audio at 16 kHz, for tests to analyse
LOOPBACK_LIMIT_FRAMES = 10


class _Pty:
    """One pty pair; the simulator keeps the slave open so the master never sees EIO."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class HostedModem:
    """A SimulatedModem plus its ptys, by-id links and PCM state (the modem's Host)."""

    def __init__(
        self,
        index: int,
        dialect: Dialect,
        config: SimulatorConfig,
        by_id: Path,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.index = index
        self.loop = loop
        self.by_id = by_id
        rng = random.Random(f"{config.seed}:{index}")
        imei = dialect.imei_prefix + f"{rng.randrange(10**13):013d}"
        faults = Faults(parse_faults(list(config.faults)), rng)
        timing = {
            "boot": config.boot_seconds,
            "sim_ready": config.sim_ready_seconds,
            "register": config.register_seconds,
            "reset": config.reset_seconds,
        }
        self.at: _Pty | None = None
        self.voice: _Pty | None = None
        self.dropped_bytes = 0
        self._phase = 0
        self._looped = bytearray()
        self._uplink = bytearray()
        self.modem = SimulatedModem(
            dialect, imei, make_sims(index, config.sims, rng, config.pin), faults, self, timing
        )
        self._plug()

    def link(self, interface: str) -> Path:
        """The stable by-id path of one USB interface of this modem."""
        name = f"usb-callmesh_{self.modem.dialect.model}_{self.modem.imei}-{interface}-port0"
        return self.by_id / name

    def info(self) -> dict[str, object]:
        """Paths and SIM identities, as printed and written to JSON."""
        d = self.modem.dialect
        return {
            "index": self.index,
            "profile": d.profile,
            "imei": self.modem.imei,
            "at": self.at.path if self.at else None,
            "voice": self.voice.path if self.voice else None,
            "at_by_id": str(self.link(d.at_interface)),
            "voice_by_id": str(self.link(d.voice_interface)) if d.voice else None,
            "slot": self.modem.slot,
            "dropped_bytes": self.dropped_bytes,
            "sims": [
                {"imsi": s.imsi, "iccid": s.iccid, "number": s.number, "present": s.present}
                for s in self.modem.sims
            ],
        }

    # -- Host protocol ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Bytes to the AT port; dropped (and counted) if nobody drains the pty."""
        if self.at is None:
            return
        try:
            written = os.write(self.at.master, data)
        except OSError:
            written = 0
        self.dropped_bytes += len(data) - written

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        """Timer on the simulator loop."""
        self.loop.call_later(delay, callback)

    def now(self) -> float:
        """Loop time."""
        return self.loop.time()

    def power_cycle(self, off_seconds: float) -> None:
        """The device leaves USB (ptys and links vanish) and returns under new names."""
        self._unplug()
        self.loop.call_later(off_seconds, self._replug)

    def _replug(self) -> None:
        self._plug()
        self.modem.boot()

    def _plug(self) -> None:
        self.at = _Pty()
        self.loop.add_reader(self.at.master, self._on_at)
        if self.modem.dialect.voice:
            self.voice = _Pty()
            self.loop.add_reader(self.voice.master, self._on_voice)
        self._write_links()

    def _write_links(self) -> None:
        d = self.modem.dialect
        pairs = [(d.at_interface, self.at), (d.voice_interface, self.voice if d.voice else None)]
        for interface, pty_ in pairs:
            if pty_ is None:
                continue
            target = self.link(interface)
            tmp = target.with_name(target.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(pty_.path)
            tmp.replace(target)

    def _unplug(self) -> None:
        d = self.modem.dialect
        for interface in (d.at_interface, d.voice_interface):
            with contextlib.suppress(FileNotFoundError):
                self.link(interface).unlink()
        for pty_ in (self.at, self.voice):
            if pty_ is not None:
                self.loop.remove_reader(pty_.master)
                pty_.close()
        self.at = self.voice = None

    def close(self) -> None:
        """Remove links and close ptys for good."""
        self.modem.generation += 1
        self._unplug()

    def _on_at(self) -> None:
        if self.at is None:
            return
        try:
            data = os.read(self.at.master, 4096)
        except OSError:
            return
        self.modem.feed(data)

    def _on_voice(self) -> None:
        if self.voice is None:
            return
        try:
            data = os.read(self.voice.master, 65536)
        except OSError:
            return
        if not self.modem.voice_routed:
            return
        self.modem.record.uplink_bytes += len(data)
        self._uplink += data
        del self._uplink[:-UPLINK_TAIL_BYTES]
        self.modem.record.uplink_tail = bytes(self._uplink)
        if self.modem.loopback:
            self._looped += data
            del self._looped[: -LOOPBACK_LIMIT_FRAMES * self.modem.frame_bytes]

    def pcm_tick(self) -> None:
        """Write one downlink frame while routed: the far end's tone, or silence."""
        modem = self.modem
        if self.voice is None or not modem.voice_routed:
            return
        size = modem.frame_bytes
        tone = _tone(modem.tone_hz, modem.sample_rate) if modem.tone_hz else None
        if modem.loopback:
            frame = bytes(self._looped[:size]).ljust(size, b"\x00")
            del self._looped[:size]
        elif tone is None:
            frame = bytes(size)
        else:
            start = self._phase % len(tone)
            frame = (tone[start:] + tone)[:size]
            self._phase = (start + size) % len(tone)
        try:
            os.write(self.voice.master, frame)
        except OSError:
            self.dropped_bytes += size


_TONES: dict[tuple[float, int], bytes] = {}


def _tone(hz: float, rate: int) -> bytes:
    """One second of a sine at ``hz`` (S16LE, amplitude 8000), cached."""
    key = (hz, rate)
    if key not in _TONES:
        samples = (int(8000 * math.sin(2 * math.pi * hz * n / rate)) for n in range(rate))
        _TONES[key] = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
    return _TONES[key]
