"""A fake GSM channel implementing ``SimChannel``, for tests and the demo (no modem needed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.sim.model import ChannelState, SimIdentity
from drivers.modem.errors import FeatureNotAvailable


@dataclass
class FakeSimChannel:
    """One modem with SIM slots (None: empty); ``unregistered`` ICCIDs never register."""

    channel: str
    slots: list[SimIdentity | None]
    slot: int = 0
    unregistered: set[str] = field(default_factory=set)
    signal_dbm: int = -71
    selects: list[int] = field(default_factory=list)

    async def select_slot(self, slot: int) -> None:
        """Select ``slot`` (recorded in ``selects``)."""
        if not 0 <= slot < len(self.slots):
            raise FeatureNotAvailable(f"{self.channel} has no slot {slot}")
        self.selects.append(slot)
        self.slot = slot

    async def read_state(self) -> ChannelState:
        """The channel with the SIM in the selected slot."""
        return self.state()

    def state(self) -> ChannelState:
        """The same, without awaiting."""
        sim = self.slots[self.slot]
        registered = sim is not None and sim.iccid not in self.unregistered
        return ChannelState(
            self.channel,
            f"modem-{self.channel}",
            self.slot,
            len(self.slots),
            sim,
            registered,
            self.signal_dbm if sim else None,
        )
