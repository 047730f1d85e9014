"""Counters one modem exposes, as a plain dataclass the appliance can export to Prometheus."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class ModemCounters:
    """Monotonic counters for one modem (all start at zero)."""

    commands: int = 0
    command_errors: int = 0
    timeouts: int = 0
    urcs: int = 0
    garbage_lines: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    keepalives: int = 0
    wedges: int = 0
    unplugs: int = 0
    recoveries: int = 0
    recoveries_ok: int = 0
    recoveries_failed: int = 0
    recovery_steps: dict[str, int] = field(default_factory=dict)
    zombie_calls: int = 0
    sms_sent: int = 0
    sms_received: int = 0

    def step(self, name: str) -> None:
        """Count one recovery-ladder step."""
        self.recovery_steps[name] = self.recovery_steps.get(name, 0) + 1

    def as_dict(self) -> dict[str, int]:
        """The scalar counters as name -> value (ladder steps stay in ``recovery_steps``)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if isinstance(v, int)}
