"""The SIMs on the sync link: their status sent when it changes, HQ's SIM commands applied."""

from __future__ import annotations

from appliance.sim.commands import handles
from appliance.sim.service import SimService
from appliance.sync.features import CommandHandler
from drivers.sync.protocol import Message, SimStatus

SIM_STATUS_MIN_S = 1.0  # busy gateways change every second; HQ needs no more than that


class SimStatusPublisher:
    """``sim-status`` when the SIMs' state changed (at most each second), and every interval."""

    def __init__(self, sim: SimService, interval_s: float) -> None:
        self._sim = sim
        self._interval_s = interval_s
        self._sent = (-1, 0.0)

    def reset(self) -> None:
        """A new session: send the state again at once."""
        self._sent = (-1, 0.0)

    def due(self, now: float) -> list[Message]:
        """The status message when it is due at ``now``."""
        revision, sent_at = self._sent
        due = now - sent_at > self._interval_s
        if (revision == self._sim.revision and not due) or now - sent_at < SIM_STATUS_MIN_S:
            return []
        self._sent = (self._sim.revision, now)
        return [SimStatus(self._sim.records(), list(self._sim.switches))]


def sim_commands(sim: SimService) -> CommandHandler:
    """HQ's SIM commands (block, unblock, switch, ...) applied by the SIM service."""
    return CommandHandler(handles, sim.apply_command)
