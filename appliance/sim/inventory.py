"""Reading every slot's SIM of a multi-SIM modem, and putting the modem back as it was.

Theory of operation: a modem reads the identity (ICCID, IMSI) of the SIM in its
selected slot only, so knowing the standby SIM means selecting its slot for a moment.
``take_inventory`` runs on an idle channel that the SIM service has marked busy (no
call can be placed or held on it meanwhile): it selects each other slot in turn, reads
the SIM there (an empty or unregistered slot still answers with what it has), and
always selects the home slot again before it returns, even when a read failed. A slot
whose read failed is left out of the result, so what was known of it stays known.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from appliance.sim.model import CHANNEL_ERRORS, ChannelState, SimChannel, SimIdentity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inventory:
    """The SIM found in each slot read (None: empty) and the channel's state afterwards."""

    slots: dict[int, SimIdentity | None]
    home: ChannelState


async def take_inventory(driver: SimChannel, home: ChannelState, timeout_s: float) -> Inventory:
    """Read every slot of ``driver``'s modem, then select ``home.slot`` again."""
    found: dict[int, SimIdentity | None] = {home.slot: home.sim}
    try:
        for slot in range(home.slots):
            if slot == home.slot:
                continue
            state = await _read_slot(driver, slot, timeout_s)
            if state is not None and state.slot == slot:
                found[slot] = state.sim
    finally:
        back = await _go_home(driver, home, timeout_s)
    return Inventory(found, back)


async def _read_slot(driver: SimChannel, slot: int, timeout_s: float) -> ChannelState | None:
    """The channel with ``slot`` selected, or None when the modem could not be read."""
    try:
        await asyncio.wait_for(driver.select_slot(slot), timeout_s)
    except CHANNEL_ERRORS as err:
        # An empty slot or a SIM that does not register fails the switch, yet the
        # modem is on that slot now and can say which SIM (if any) it holds.
        log.info(
            "inventory: slot selected without registration",
            extra={"channel": driver.channel, "slot": slot, "error": repr(err)},
        )
    try:
        return await asyncio.wait_for(driver.read_state(), timeout_s)
    except CHANNEL_ERRORS as err:
        log.warning(
            "inventory: cannot read a SIM slot",
            extra={"channel": driver.channel, "slot": slot, "error": repr(err)},
        )
        return None


async def _go_home(driver: SimChannel, home: ChannelState, timeout_s: float) -> ChannelState:
    """Select the home slot again; if that fails, the channel as the modem reports it now."""
    try:
        await asyncio.wait_for(driver.select_slot(home.slot), timeout_s)
    except CHANNEL_ERRORS as err:
        log.error(
            "inventory: the modem did not return to its slot",
            extra={"channel": driver.channel, "slot": home.slot, "error": repr(err)},
        )
    try:
        return await asyncio.wait_for(driver.read_state(), timeout_s)
    except CHANNEL_ERRORS as err:
        log.error(
            "inventory: cannot read the channel; it takes no calls until the driver reports it",
            extra={"channel": driver.channel, "error": repr(err)},
        )
        return ChannelState(home.channel, home.modem, home.slot, home.slots)
