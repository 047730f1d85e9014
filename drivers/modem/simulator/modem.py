"""Core of one simulated modem: power, boot, SIM readiness, bytes in and out.

Theory of operation. The host (:mod:`drivers.modem.simulator.host`) feeds bytes from the AT pty and
provides timers, the clock and the power switch. The modem echoes commands until ``ATE0``,
ignores everything while booting or wedged (except ``AT+CFUN=1,1`` when wedged), answers SIM
commands with ``+CME ERROR: 14`` until the SIM is initialised, and reports calls in its
vendor's dialect. Commands are handled in :mod:`drivers.modem.simulator.commands` and the far end
(incoming calls, SMS, USSD replies) in :mod:`drivers.modem.simulator.farend`, both subclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from drivers.modem.grammar import CME_TEXTS
from drivers.modem.simulator.dialects import Dialect
from drivers.modem.simulator.state import FarEnd, Faults, ModemRecord, SimCall, SimCard

Reply = tuple[list[str], str] | None


class Host(Protocol):
    """What a simulated modem needs from the process that hosts it."""

    def write(self, data: bytes) -> None:
        """Send bytes on the AT port."""

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` after ``delay`` seconds."""

    def now(self) -> float:
        """Monotonic seconds."""

    def power_cycle(self, off_seconds: float) -> None:
        """Drop the USB device (ptys close) and bring it back under new names."""


class ModemCore:
    """Power, boot, SIM readiness and byte handling of one simulated modem."""

    def __init__(
        self,
        dialect: Dialect,
        imei: str,
        sims: list[SimCard],
        faults: Faults,
        host: Host,
        timing: dict[str, float],
    ) -> None:
        self.dialect = dialect
        self.imei = imei
        self.sims = sims
        self.faults = faults
        self.host = host
        self.timing = timing
        self.record = ModemRecord()
        self.far_end = FarEnd()
        self.ussd_replies: dict[str, str] = {}
        self.tone_hz: float | None = None
        self.loopback = False
        self.slot = 0
        self.generation = 0
        self._buffer = bytearray()
        self._payload_for: int | None = None
        self.calls: dict[int, SimCall] = {}
        self.storage: dict[int, str] = {}
        self.pending_hangup: dict[int, float | None] = {}
        self.boot()

    # -- power and boot ----------------------------------------------------------------

    def boot(self) -> None:
        """Power on: factory settings, answer after the boot delay, SIM ready later."""
        self.generation += 1
        self.phase = "booting"
        self.wedged = False
        self.echo = True
        self.cmee = 0
        self.flags: set[str] = set()
        self.pcm_on = False
        self.sample_rate = 8000
        self.radio = True
        self.sim_state = "BUSY"
        self.registered = False
        self.calls.clear()
        self._buffer.clear()
        self._payload_for = None
        self.after(self.timing["boot"], self._booted)

    def _booted(self) -> None:
        self.phase = "on"
        self.urc(*self.dialect.boot_urcs)
        self.after(self.timing["sim_ready"], self.sim_ready)

    def sim_ready(self) -> None:
        sim = self.sim
        if not sim.present:
            self.sim_state = "ABSENT"
            return
        self.sim_state = "PIN" if sim.pin else "READY"
        self.urc("+CPIN: SIM PIN" if sim.pin else "+CPIN: READY")
        if self.dialect.vendor == "quectel" and not sim.pin:
            self.urc("+QUSIM: 1", "+QIND: SMS DONE")
        if not sim.pin:
            self.after(self.timing["register"], self.register)

    def register(self) -> None:
        if self.sim_state == "READY" and self.radio and not self.registered:
            self.registered = True
            self.announce_registration()

    def announce_registration(self) -> None:
        stat = 1 if self.registered else 0
        if "creg" in self.flags:
            self.urc(f'+CREG: {stat},"1A2B","01A2B3C4"' + (",7" if self.dialect.lte else ",2"))
        if "cereg" in self.flags and self.dialect.lte:
            self.urc(f'+CEREG: {stat},"1A2B","01A2B3C4",7')

    @property
    def sim(self) -> SimCard:
        """The SIM in the selected slot."""
        return self.sims[self.slot]

    @property
    def voice_routed(self) -> bool:
        """True while PCM flows on the voice port."""
        active = any(c.state == "active" for c in self.calls.values())
        return self.dialect.voice and active and self.pcm_on

    @property
    def frame_bytes(self) -> int:
        """Bytes per 20 ms PCM frame."""
        return self.sample_rate // 50 * 2

    def after(self, delay: float, callback: Callable[[], None]) -> None:
        """A timer that dies with a power cycle."""
        generation = self.generation

        def fire() -> None:
            if generation == self.generation:
                callback()

        self.host.later(delay, fire)

    def reset(self) -> None:
        """``AT+CFUN=1,1`` or a replug: the device leaves USB and boots again."""
        self.record.resets += 1
        self.generation += 1
        self.phase = "off"
        self.host.power_cycle(self.timing["reset"])

    # -- bytes in, bytes out -------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes the host wrote to the AT port."""
        if self.phase != "on":
            return
        self._buffer += data
        while self._buffer and self.phase == "on":
            if self._payload_for is not None:
                if not self._take_payload():
                    return
                continue
            end = self._buffer.find(b"\r")
            if end < 0:
                del self._buffer[:-512]
                return
            line = self._buffer[:end].decode("latin-1").strip("\n ")
            del self._buffer[: end + 1]
            if line:
                self._command(line)

    def urc(self, *lines: str) -> None:
        """Send unsolicited lines."""
        if self.phase == "on" and not self.wedged:
            self.host.write(b"".join(f"\r\n{line}\r\n".encode("latin-1") for line in lines))

    def _command(self, line: str) -> None:
        self.record.commands += 1
        if self.wedged:
            if line.upper().replace(" ", "") == "AT+CFUN=1,1":
                self.reset()
            return
        if self.faults.hit("wedge"):
            self.wedged = True
            return
        echo = f"{line}\r" if self.echo else ""
        reply = self.dispatch(line)
        if reply is not None:
            self.respond(echo, *reply)
        elif echo:
            self.host.write(echo.encode("latin-1"))

    def respond(self, echo: str, lines: list[str], final: str) -> None:
        """Write echo, information lines and final result (with the configured faults)."""
        if self.faults.hit("urc_inside"):
            lines = [
                "^RSSI:15" if self.dialect.vendor == "huawei" else '+QIND: "csq",20,99',
                *lines,
            ]
        body = "".join(f"\r\n{line}\r\n" for line in [*lines, final])
        data = (echo + body).encode("latin-1")
        if self.faults.hit("slow"):
            delay = 0.2 + 0.4 * self.faults.rng.random()
            self.after(delay, lambda: self.host.write(data))
        else:
            self.host.write(data)

    def error(self, code: int) -> tuple[list[str], str]:
        """``ERROR`` or ``+CME ERROR`` depending on AT+CMEE (27.007 §9.1)."""
        if self.cmee == 1:
            return [], f"+CME ERROR: {code}"
        if self.cmee == 2:
            return [], f"+CME ERROR: {CME_TEXTS.get(code, code)}"
        return [], "ERROR"

    def dispatch(self, line: str) -> Reply:
        """Run one command line; None when the reply is sent later (SMS prompt)."""
        raise NotImplementedError

    def submit(self, payload: str, length: int) -> tuple[list[str], str]:
        """Handle an SMS-SUBMIT PDU of ``length`` TPDU octets written after the prompt."""
        raise NotImplementedError

    def _take_payload(self) -> bool:
        for index, byte in enumerate(self._buffer):
            if byte in (0x1A, 0x1B):
                payload = self._buffer[:index].decode("latin-1").strip()
                del self._buffer[: index + 1]
                if self.echo:
                    self.host.write(payload.encode("latin-1") + bytes([byte]))
                length, self._payload_for = self._payload_for, None
                reply = self.submit(payload, length or 0) if byte == 0x1A else ([], "OK")
                self.respond("", *reply)
                return True
        return False

    def expect_payload(self, length: int) -> None:
        """After ``AT+CMGS=<n>``: send the prompt and collect the PDU."""
        self._payload_for = length
        self.host.write(b"\r\n> ")
