"""Data of one simulated modem: SIM cards, calls, stored SMS, far-end behaviour, faults."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from drivers.modem.simulator.dialects import DIALECTS

# Per-event probabilities used when a fault is named without a rate.
DEFAULT_RATES = {
    "garbage": 0.3,  # per 0.5 s tick: a line of garbage bytes
    "urc_storm": 0.05,  # per tick: a burst of signal URCs
    "urc_inside": 0.5,  # per response: a URC between echo and final result
    "slow": 0.5,  # per response: 0.2-0.6 s delay
    "lost_no_carrier": 1.0,  # per remote hang-up: no NO CARRIER and no release URC
    "sim_busy": 0.3,  # per SIM command: +CME ERROR: 14
    "wedge": 0.0,  # per command: stop answering until AT+CFUN=1,1 or replug
    "unplug": 0.0,  # per tick: the ports vanish and come back under new names
    "sim_removed": 0.0,  # per tick: the SIM drops out
}


def parse_faults(specs: list[str]) -> dict[str, float]:
    """``["garbage", "slow=0.2"]`` -> rates; unknown names raise ValueError."""
    rates: dict[str, float] = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        name = name.strip().replace("-", "_")
        if name not in DEFAULT_RATES:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(DEFAULT_RATES)}")
        rates[name] = float(value) if value else DEFAULT_RATES[name]
    return rates


@dataclass
class SimCard:
    """One SIM in a slot."""

    imsi: str
    iccid: str
    number: str
    pin: str | None = None
    present: bool = True


@dataclass
class SimCall:
    """A call as the simulated network sees it."""

    idx: int
    incoming: bool
    number: str
    state: str
    answered_at: float | None = None


@dataclass
class FarEnd:
    """How the remote party behaves on the next outgoing call."""

    outcome: str = "answer"  # answer | busy | no-answer | no-carrier (network, cause 34)
    answer_after: float = 0.5
    hangup_after: float | None = None


@dataclass
class Faults:
    """Seeded fault injection: the same seed gives the same faults."""

    rates: dict[str, float]
    rng: random.Random

    def hit(self, name: str) -> bool:
        """Roll the dice for ``name``."""
        rate = self.rates.get(name, 0.0)
        return rate > 0 and self.rng.random() < rate


@dataclass
class ModemRecord:
    """What the far end observed, for tests and the demo to inspect."""

    sent_sms: list[tuple[str, str]] = field(default_factory=list)
    dialled: list[str] = field(default_factory=list)
    dtmf_sent: list[str] = field(default_factory=list)
    uplink_bytes: int = 0
    uplink_tail: bytes = b""
    commands: int = 0
    resets: int = 0


def make_sims(index: int, count: int, rng: random.Random, pin: str | None) -> list[SimCard]:
    """Deterministic SIM cards for modem ``index``."""
    sims = []
    for slot in range(count):
        serial = f"{index:03d}{slot}{rng.randrange(10**6):06d}"
        number = f"+1555{index:03d}{slot}{rng.randrange(1000):03d}"
        sims.append(SimCard(f"00101{serial}0", f"8901001{serial}00F", number, pin))
    return sims


@dataclass(frozen=True)
class SimulatorConfig:
    """What to simulate; times in seconds (a real EC25 reset takes about 11 s)."""

    profile: str = "quectel-ec25"
    count: int = 1
    sims: int = 1
    seed: int = 0
    faults: tuple[str, ...] = ()
    directory: str | None = None
    boot_seconds: float = 0.1
    sim_ready_seconds: float = 0.2
    register_seconds: float = 0.2
    reset_seconds: float = 0.5
    pin: str | None = None

    def validate(self) -> None:
        """Raise ValueError naming the bad setting."""
        if self.profile not in DIALECTS:
            raise ValueError(f"unknown profile {self.profile!r}; known: {', '.join(DIALECTS)}")
        if not 1 <= self.count <= 256:
            raise ValueError("count must be 1..256")
        if self.sims > 1 and not DIALECTS[self.profile].dual_sim:
            raise ValueError(f"{self.profile} has a single SIM slot")
        if not 1 <= self.sims <= 2:
            raise ValueError("sims must be 1 or 2")
        parse_faults(list(self.faults))
