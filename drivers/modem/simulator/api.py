"""In-process API of the modem simulator: start N modems, script the far end, inject faults.

Every method is safe to call from any thread (it runs on the simulator's own loop) and returns
within a few seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from drivers.modem.simulator.host import HostedModem
from drivers.modem.simulator.loop import SimulatorLoop
from drivers.modem.simulator.state import FarEnd, ModemRecord, SimulatorConfig, parse_faults


class ModemSimulator:
    """N simulated modems on ptys; use as a context manager or call start()/stop()."""

    def __init__(self, config: SimulatorConfig | None = None, **kwargs: Any) -> None:
        self._loop = SimulatorLoop(config or SimulatorConfig(**kwargs))
        self.config = self._loop.config

    def __enter__(self) -> ModemSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def directory(self) -> Path:
        """The directory holding the ``by-id`` links."""
        return self._loop.directory

    def start(self) -> None:
        """Create the ptys; the modems boot in the background."""
        self._loop.start()

    def stop(self) -> None:
        """Unplug every modem and stop the simulator thread."""
        self._loop.stop()

    def wait_booted(self, within: float = 30.0) -> None:
        """Block until every modem answers AT (after boot or a power cycle)."""
        deadline = time.monotonic() + within
        while not self._loop.call(lambda: all(h.modem.phase == "on" for h in self._loop.modems)):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"simulated modems not booted within {within} s")
            time.sleep(0.01)

    def info(self) -> list[dict[str, object]]:
        """Per modem: index, profile, IMEI, pty paths, by-id paths, SIM identities."""
        return self._loop.call(lambda: [hosted.info() for hosted in self._loop.modems])

    def write_json(self, path: str | Path, control: str | None = None) -> None:
        """Write :meth:`info` (plus the control URL) as JSON."""
        document = {"directory": str(self.directory), "control": control, "modems": self.info()}
        Path(path).write_text(json.dumps(document, indent=2) + "\n")

    def _on(self, index: int, action: Any) -> Any:
        def run() -> Any:
            return action(self._modem(index))

        return self._loop.call(run)

    def _modem(self, index: int) -> HostedModem:
        if not 0 <= index < len(self._loop.modems):
            raise IndexError(f"no simulated modem {index}")
        return self._loop.modems[index]

    def incoming_call(
        self, index: int, number: str, ring_seconds: float = 30.0, hangup_after: float | None = None
    ) -> int:
        """Ring modem ``index`` from ``number``; returns the call index."""
        result: int = self._on(
            index, lambda h: h.modem.incoming_call(number, ring_seconds, hangup_after)
        )
        return result

    def set_far_end(
        self,
        index: int,
        outcome: str = "answer",
        answer_after: float = 0.5,
        hangup_after: float | None = None,
    ) -> None:
        """How the far end treats the next outgoing calls (answer, busy, no-answer)."""
        if outcome not in ("answer", "busy", "no-answer", "no-carrier"):
            raise ValueError("outcome must be answer, busy, no-answer or no-carrier")
        far = FarEnd(outcome, answer_after, hangup_after)
        self._on(index, lambda h: setattr(h.modem, "far_end", far))

    def hang_up(self, index: int) -> bool:
        """The far end hangs up; False when there was no call."""
        result: bool = self._on(index, lambda h: h.modem.hang_up_remote())
        return result

    def set_loopback(self, index: int, on: bool) -> None:
        """The far end sends back what it hears (an echo test line), instead of a tone."""
        self._on(index, lambda h: setattr(h.modem, "loopback", on))

    def send_dtmf(self, index: int, digits: str) -> None:
        """The far end presses ``digits``."""
        self._on(index, lambda h: h.modem.remote_dtmf(digits))

    def play_tone(self, index: int, hz: float | None) -> None:
        """The far end plays a sine at ``hz`` (None: silence)."""
        self._on(index, lambda h: setattr(h.modem, "tone_hz", hz))

    def deliver_sms(self, index: int, number: str, text: str) -> list[int]:
        """An SMS from ``number`` arrives (multipart when long); returns storage indexes."""
        result: list[int] = self._on(index, lambda h: h.modem.deliver_sms(number, text))
        return result

    def set_ussd_reply(self, index: int, code: str, reply: str) -> None:
        """What the network answers to USSD ``code``."""
        self._on(index, lambda h: h.modem.ussd_replies.__setitem__(code, reply))

    def wedge(self, index: int) -> None:
        """The modem stops answering until AT+CFUN=1,1 or a replug."""
        self._on(index, lambda h: setattr(h.modem, "wedged", True))

    def unplug(self, index: int, replug_after: float = 1.0) -> None:
        """The ports vanish and come back under new names after ``replug_after`` seconds."""
        self._on(index, lambda h: h.power_cycle(replug_after))

    def replug(self, index: int) -> None:
        """Power-cycle now (clears a wedge)."""
        self._on(index, lambda h: h.power_cycle(h.modem.timing["reset"]))

    def set_sim_present(self, index: int, present: bool) -> None:
        """Remove or re-insert the SIM in the selected slot."""
        self._on(index, lambda h: h.modem.set_sim_present(present))

    def set_network(self, index: int, available: bool) -> None:
        """Take network coverage away from modem ``index`` or give it back."""
        self._on(index, lambda h: h.modem.set_network(available))

    def set_faults(self, index: int, faults: list[str]) -> None:
        """Replace the fault rates of one modem (``["slow=0.2", "garbage"]``)."""
        rates = parse_faults(faults)
        self._on(index, lambda h: setattr(h.modem.faults, "rates", rates))

    def record(self, index: int) -> ModemRecord:
        """What the far end observed: SMS sent, numbers dialled, DTMF, uplink, commands, resets."""
        result: ModemRecord = self._on(index, lambda h: h.modem.record)
        return result

    def calls(self, index: int) -> list[dict[str, object]]:
        """Calls as the network sees them."""
        result: list[dict[str, object]] = self._on(
            index,
            lambda h: [
                {"idx": c.idx, "incoming": c.incoming, "number": c.number, "state": c.state}
                for c in h.modem.calls.values()
            ],
        )
        return result

    def voice_routed(self, index: int) -> bool:
        """True while the modem streams PCM."""
        result: bool = self._on(index, lambda h: h.modem.voice_routed)
        return result
