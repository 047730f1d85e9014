"""SIM usage policy: per-SIM limits and counters, channel choice, slot switching, HQ commands."""

from appliance.sim.model import (
    CallOutcome,
    ChannelState,
    Pick,
    Refusal,
    SimChannel,
    SimIdentity,
)
from appliance.sim.service import SimService

__all__ = [
    "CallOutcome",
    "ChannelState",
    "Pick",
    "Refusal",
    "SimChannel",
    "SimIdentity",
    "SimService",
]
