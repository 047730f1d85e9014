"""Simulated GSM/LTE modems on pty pairs, with a far end to script and seeded faults."""

from drivers.modem.sim.api import ModemSimulator
from drivers.modem.sim.state import SimulatorConfig

__all__ = ["ModemSimulator", "SimulatorConfig"]
