"""Which modems a SIM-gateway appliance drives, each becoming one GSM channel."""

from __future__ import annotations

from pydantic import Field

from drivers.runtime.settings_base import Section


class ModemEntry(Section):
    """One modem: its AT port (a stable by-id path), optional voice port and identity."""

    channel: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    port: str = Field(min_length=1, description="AT port, e.g. /dev/serial/by-id/...-if02")
    voice_port: str | None = None
    profile: str | None = Field(None, description="model profile; detected when unset")
    imei: str | None = Field(None, pattern=r"^[0-9]{15}$")
    pin: str | None = Field(None, pattern=r"^[0-9]{4,8}$")


class SmsSettings(Section):
    """Outgoing SMS pacing and the size of the local inbox."""

    per_sim_per_minute: int = Field(6, ge=1, le=60)
    max_attempts: int = Field(3, ge=1, le=10)
    keep_inbox: int = Field(1000, ge=10, le=100000)


class GatewaySettings(Section):
    """The modems of a SIM gateway and how long start-up may wait for them."""

    modems: tuple[ModemEntry, ...] = ()
    ready_timeout_s: float = Field(60.0, gt=0)
    sms: SmsSettings = SmsSettings()
