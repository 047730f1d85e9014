"""The network and the far end of a simulated modem: call progress, incoming calls, SMS,
USSD replies, DTMF and tones, plus the periodic faults (garbage, URC storms, unplug)."""

from __future__ import annotations

from datetime import UTC, datetime

from drivers.modem import pdu
from drivers.modem.simulator.dialects import call_urcs
from drivers.modem.simulator.modem import ModemCore
from drivers.modem.simulator.state import SimCall

_RING_INTERVAL = 2.0
_RESULT_CAUSE = {"NO CARRIER": 16, "BUSY": 17, "NO ANSWER": 19}


class FarEndModem(ModemCore):
    """Call states as the network drives them."""

    def next_idx(self) -> int:
        """Lowest free call index; LTE modules list a phantom PS "call" as index 1."""
        idx = 2 if self.dialect.lte else 1
        while idx in self.calls:
            idx += 1
        return idx

    def set_state(self, call: SimCall, state: str, cause: int = 16) -> None:
        """Move ``call`` to ``state`` and announce it in the modem's dialect."""
        call.state = state
        if state == "active":
            call.answered_at = self.host.now()
        duration = int(self.host.now() - call.answered_at) if call.answered_at else 0
        lines = call_urcs(
            self.dialect, self.flags, call.idx, call.incoming, call.number, state, duration, cause
        )
        if state == "released":
            self.calls.pop(call.idx, None)
            if not self.calls:
                self.pcm_on = self.pcm_on and self.dialect.vendor == "quectel"
        self.urc(*lines)

    def place_call(self, number: str) -> None:
        """ATD accepted: dialing now, alerting shortly, then the far end's choice."""
        call = SimCall(self.next_idx(), False, number, "dialing")
        self.calls[call.idx] = call
        self.after(0.05, lambda: self.set_state(call, "dialing"))
        self.after(0.2, lambda: self._alert(call))

    def _alert(self, call: SimCall) -> None:
        if call.idx not in self.calls:
            return
        self.set_state(call, "alerting")
        far = self.far_end
        self.after(far.answer_after, lambda: self._far_end_decides(call))

    def _far_end_decides(self, call: SimCall) -> None:
        if self.calls.get(call.idx) is not call:
            return
        outcome = self.far_end.outcome
        if outcome == "busy":
            self.remote_release(call, "BUSY")
        elif outcome == "no-answer":
            self.remote_release(call, "NO ANSWER")
        elif outcome == "no-carrier":
            self.remote_release(call, "NO CARRIER", cause=34)
        else:
            self.set_state(call, "active")
            self._schedule_hangup(call, self.far_end.hangup_after)

    def _schedule_hangup(self, call: SimCall, after: float | None) -> None:
        if after is not None:
            self.after(after, lambda: self.remote_release(call, "NO CARRIER"))

    def remote_release(self, call: SimCall, result: str = "NO CARRIER", cause: int = 0) -> None:
        """The far end hung up (or was busy / did not answer / the network failed the call)."""
        if self.calls.get(call.idx) is not call:
            return
        if self.faults.hit("lost_no_carrier"):
            self.calls.pop(call.idx, None)
            return
        self.set_state(call, "released", cause or _RESULT_CAUSE.get(result, 16))
        self.urc(result)

    def local_release(self, idx: int | None = None, cause: int = 16) -> None:
        """ATH, AT+CHUP or AT+QHUP from the host."""
        for call in list(self.calls.values()):
            if idx is None or call.idx == idx:
                self.set_state(call, "released", cause)

    def answer_call(self) -> bool:
        """ATA: connect the ringing call."""
        for call in self.calls.values():
            if call.incoming and call.state == "incoming":
                self.set_state(call, "active")
                self._schedule_hangup(call, self.pending_hangup.pop(call.idx, None))
                return True
        return False

    # -- far-end actions (control interface) ---------------------------------------------

    def incoming_call(
        self, number: str, ring_seconds: float = 30.0, hangup_after: float | None = None
    ) -> int:
        """A call from ``number`` rings; unanswered after ``ring_seconds`` it is missed."""
        call = SimCall(self.next_idx(), True, number, "incoming")
        self.calls[call.idx] = call
        self.pending_hangup[call.idx] = hangup_after
        self.set_state(call, "incoming")
        self._ring(call, ring_seconds)
        return call.idx

    def _ring(self, call: SimCall, remaining: float) -> None:
        if self.calls.get(call.idx) is not call or call.state != "incoming":
            return
        if remaining <= 0:
            self.remote_release(call)
            return
        kind = 145 if call.number.startswith("+") else 129
        self.urc("RING", f'+CLIP: "{call.number}",{kind},,,,0')
        self.after(_RING_INTERVAL, lambda: self._ring(call, remaining - _RING_INTERVAL))

    def hang_up_remote(self) -> bool:
        """The far end hangs up every call."""
        calls = list(self.calls.values())
        for call in calls:
            self.remote_release(call)
        return bool(calls)

    def remote_dtmf(self, digits: str) -> None:
        """The far end presses keys; reported where the module detects DTMF."""
        for digit in digits:
            if "tonedet" in self.flags:
                self.urc(f"+QTONEDET: {ord(digit)}")
            if "ddet" in self.flags:
                self.urc(f"+RXDTMF: {digit}")

    def deliver_sms(self, number: str, text: str) -> list[int]:
        """An SMS (multipart when long) arrives and is stored; +CMTI names each part."""
        when = datetime.now(UTC).replace(microsecond=0)
        reference = self.faults.rng.randrange(256)
        indexes = []
        for part in pdu.encode_deliver(number, text, when, reference=reference):
            index = min(set(range(1, 256)) - set(self.storage))
            self.storage[index] = part
            indexes.append(index)
            if "cnmi" in self.flags:
                self.urc(f'+CMTI: "SM",{index}')
        return indexes

    def set_sim_present(self, present: bool) -> None:
        """Pull the SIM out of the selected slot, or put it back."""
        self.sim.present = present
        if present:
            self.sim_state = "BUSY"
            self.after(self.timing["sim_ready"], self.sim_ready)
            return
        self.sim_state = "ABSENT"
        self.registered = False
        if "qsimstat" in self.flags:
            self.urc("+QSIMSTAT: 1,0")
        self.urc("+CPIN: NOT READY")
        self.announce_registration()

    def tick(self) -> None:
        """Periodic faults, rolled twice a second."""
        if self.phase != "on":
            return
        if self.faults.hit("garbage"):
            noise = bytes(self.faults.rng.randrange(256) for _ in range(12))
            self.host.write(b"\r\n\x07" + noise.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n")
        if self.faults.hit("urc_storm"):
            self.urc(*(f"+CSQ: {self.faults.rng.randrange(10, 31)},99" for _ in range(30)))
        if self.faults.hit("sim_removed") and self.sim.present:
            self.set_sim_present(False)
        if self.faults.hit("unplug"):
            self.reset()

    def set_network(self, available: bool) -> None:
        """Coverage comes or goes: registration is lost or regained."""
        self.radio = available
        if available:
            self.after(self.timing["register"], self.register)
            return
        self.registered = False
        self.announce_registration()

    def switch_sim(self, slot: int) -> None:
        """AT+QDSIM: the new SIM initialises and registers again; identity changes."""
        self.slot = slot
        self.registered = False
        self.sim_state = "BUSY"
        self.announce_registration()
        self.after(self.timing["sim_ready"], self.sim_ready)
