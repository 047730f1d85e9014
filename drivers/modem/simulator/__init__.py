"""Simulated GSM/LTE modems on pty pairs, with a far end to script and seeded faults."""

from drivers.modem.simulator.api import ModemSimulator
from drivers.modem.simulator.state import SimulatorConfig

__all__ = ["ModemSimulator", "SimulatorConfig"]
