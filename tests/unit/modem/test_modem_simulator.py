"""The simulated modem's AT behaviour, driven directly through a fake host (no ptys)."""

from __future__ import annotations

import random
from collections.abc import Callable

from drivers.modem.simulator.commands import SimulatedModem
from drivers.modem.simulator.dialects import DIALECTS
from drivers.modem.simulator.state import Faults, make_sims

TIMING = {"boot": 1.0, "sim_ready": 1.0, "register": 1.0, "reset": 1.0}


class FakeHost:
    """Collects output; timers run when the test advances the clock."""

    def __init__(self) -> None:
        self.clock = 0.0
        self.out = bytearray()
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.power_cycles = 0

    def write(self, data: bytes) -> None:
        self.out += data

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        self.timers.append((self.clock + delay, callback))

    def now(self) -> float:
        return self.clock

    def power_cycle(self, off_seconds: float) -> None:
        self.power_cycles += 1

    def advance(self, seconds: float) -> None:
        end = self.clock + seconds
        while due := [t for t in self.timers if t[0] <= end]:
            first = min(due, key=lambda t: t[0])
            self.timers.remove(first)
            self.clock = first[0]
            first[1]()
        self.clock = end

    def take(self) -> str:
        text = self.out.decode("latin-1")
        self.out.clear()
        return text


def boot(
    profile: str, *, faults: dict[str, float] | None = None
) -> tuple[SimulatedModem, FakeHost]:
    host = FakeHost()
    rng = random.Random(1)
    modem = SimulatedModem(
        DIALECTS[profile],
        "860000000000001",
        make_sims(0, 1, rng, None),
        Faults(faults or {}, rng),
        host,
        TIMING,
    )
    host.advance(3.5)
    host.take()
    return modem, host


def test_silent_while_booting_then_boot_urcs() -> None:
    host = FakeHost()
    rng = random.Random(1)
    modem = SimulatedModem(
        DIALECTS["quectel-ec25"],
        "860000000000001",
        make_sims(0, 1, rng, None),
        Faults({}, rng),
        host,
        TIMING,
    )
    modem.feed(b"AT\r")
    assert host.take() == ""
    host.advance(1.0)
    assert host.take() == "\r\nRDY\r\n"
    modem.feed(b"AT+CPIN?\r")
    assert host.take() == "AT+CPIN?\r\r\nERROR\r\n"
    host.advance(1.0)
    assert "+CPIN: READY" in host.take()


def test_echo_until_ate0_and_back_after_atz() -> None:
    modem, host = boot("generic")
    modem.feed(b"AT\r")
    assert host.take() == "AT\r\r\nOK\r\n"
    modem.feed(b"ATE0\r")
    modem.feed(b"AT\r")
    assert host.take() == "ATE0\r\r\nOK\r\n\r\nOK\r\n"
    modem.feed(b"ATZ\rAT\r")
    assert host.take() == "\r\nOK\r\nAT\r\r\nOK\r\n"


def test_huawei_answers_unknown_commands_with_command_not_support() -> None:
    modem, host = boot("huawei-e1550")
    modem.feed(b"ATE0\rAT+QPCMV=1,0\r")
    assert host.take().endswith("\r\nCOMMAND NOT SUPPORT\r\n")


def test_sim7600_refuses_cpcmreg_outside_a_call() -> None:
    modem, host = boot("simcom-sim7600")
    modem.feed(b"ATE0\rAT+CPCMREG=1\r")
    assert host.take().endswith("\r\nERROR\r\n")


def test_e1550_ignores_everything_after_chld_11_before_conf() -> None:
    modem, host = boot("huawei-e1550")
    modem.feed(b"ATE0\rATD123;\r")
    host.take()
    modem.feed(b"AT+CHLD=11\rAT\r")
    assert host.take() == ""
    modem.feed(b"AT+CFUN=1,1\r")
    assert host.power_cycles == 1


def test_cme_errors_follow_cmee() -> None:
    modem, host = boot("generic")
    modem.set_sim_present(False)
    host.take()
    modem.feed(b"ATE0\rAT+CIMI\rAT+CMEE=1\rAT+CIMI\rAT+CMEE=2\rAT+CIMI\r")
    out = host.take()
    assert "\r\nERROR\r\n" in out
    assert "+CME ERROR: 10" in out
    assert "+CME ERROR: SIM not inserted" in out


def test_sms_prompt_and_submit() -> None:
    modem, host = boot("generic")
    modem.feed(b"ATE0\rAT+CMGS=19\r")
    assert host.take().endswith("\r\n> ")
    modem.feed(b"0011000B915155214365F70000AA05E8329BFD06\x1a")
    assert host.take() == "\r\n+CMGS: 1\r\n\r\nOK\r\n"
    assert modem.record.sent_sms == [("+15551234567", "hello")]


def test_quectel_sim_switch_changes_imsi() -> None:
    host = FakeHost()
    rng = random.Random(1)
    modem = SimulatedModem(
        DIALECTS["quectel-ec25"],
        "860000000000001",
        make_sims(0, 2, rng, None),
        Faults({}, rng),
        host,
        TIMING,
    )
    host.advance(3.5)
    modem.feed(b"ATE0\rAT+CIMI\r")
    first = host.take()
    modem.feed(b"AT+QDSIM=1\rAT+CIMI\r")
    assert "ERROR" in host.take()
    host.advance(2.5)
    modem.feed(b"AT+CIMI\r")
    second = host.take()
    assert modem.sims[1].imsi in second
    assert modem.sims[0].imsi in first


def test_urc_inside_response_fault_is_seeded() -> None:
    modem, host = boot("quectel-ec25", faults={"urc_inside": 1.0})
    modem.feed(b"ATE0\rAT+CSQ\r")
    assert '\r\n+QIND: "csq",20,99\r\n\r\n+CSQ:' in host.take()


def test_cmgs_length_must_count_tpdu_octets() -> None:
    modem, host = boot("generic")
    modem.feed(b"ATE0\rAT+CMGS=20\r")
    host.take()
    modem.feed(b"0011000B915155214365F70000AA05E8329BFD06\x1a")
    assert host.take() == "\r\n+CMS ERROR: 304\r\n"
    assert modem.record.sent_sms == []
