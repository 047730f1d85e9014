"""What the modem driver and the PBX exchange with the SIM policy: plain values and one protocol.

The driver describes each GSM channel (one modem, its selected slot) as a ``ChannelState``
and implements ``SimChannel`` so the policy can ask for another slot; the PBX asks for a
channel with ``SimService.pick`` and reports every finished call as a ``CallOutcome``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Protocol

from drivers.modem.errors import ModemError


@dataclass(frozen=True)
class SimIdentity:
    """The SIM in a slot as the modem reads it (27.007 +CCID, +CIMI, +CNUM, +COPS)."""

    iccid: str
    imsi: str = ""
    number: str = ""
    operator: str = ""


@dataclass(frozen=True)
class ChannelState:
    """One GSM channel as the driver last saw it; ``sim`` is None when the slot is empty."""

    channel: str
    modem: str
    slot: int = 0
    slots: int = 1
    sim: SimIdentity | None = None
    registered: bool = False
    signal_dbm: int | None = None


@dataclass(frozen=True)
class CallOutcome:
    """A finished call on a channel: ``connected_s`` is 0 when it was never answered."""

    channel: str
    iccid: str
    ended: datetime.datetime
    answered: bool
    connected_s: float = 0.0


@dataclass(frozen=True)
class Pick:
    """The channel to dial out on, its SIM and the call time limit the PBX must enforce."""

    channel: str
    iccid: str
    max_call_s: int | None


@dataclass(frozen=True)
class Refusal:
    """No channel can take the call; ``reasons`` maps each channel to why not."""

    error_id: str
    message: str
    reasons: dict[str, str]


CHANNEL_ERRORS: tuple[type[Exception], ...] = (ModemError, OSError, TimeoutError)
"""What a channel's calls may fail with: the modem said no, the port failed, no answer."""


class SimChannel(Protocol):
    """The modem driver's side of one channel: select a slot, then read the channel again.

    Both calls fail only with one of ``CHANNEL_ERRORS``.
    """

    channel: str

    async def select_slot(self, slot: int) -> None:
        """Switch the modem to SIM ``slot`` (AT commands, re-registration: the driver's job)."""
        ...

    async def read_state(self) -> ChannelState:
        """Read identity, registration and signal afresh (after a slot switch)."""
        ...
