"""Which modems a SIM-gateway appliance drives, each becoming one GSM channel."""

from __future__ import annotations

from pydantic import Field

from appliance.pbx.settings import WebhookSettings
from drivers.daemon.settings_base import Section


class ModemEntry(Section):
    """One modem: its AT port (a stable by-id path), optional voice port and identity."""

    channel: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    port: str = Field(min_length=1, description="AT port, e.g. /dev/serial/by-id/...-if02")
    voice_port: str | None = None
    profile: str | None = Field(None, description="model profile; detected when unset")
    imei: str | None = Field(None, pattern=r"^[0-9]{15}$")
    pin: str | None = Field(None, pattern=r"^[0-9]{4,8}$")


class SmsSettings(Section):
    """Outgoing SMS: per-SIM rate limit (token bucket), retries, expiry; stored history."""

    rate_per_minute: float = Field(6.0, gt=0, le=600, description="parts per minute per SIM")
    burst: int = Field(10, ge=1, le=100, description="parts a rested SIM may send at once")
    max_parts: int = Field(10, ge=1, le=20)
    max_attempts: int = Field(3, ge=1, le=10)
    retry_delay_s: float = Field(10.0, gt=0, le=3600, description="doubles per attempt")
    expire_s: float = Field(86400.0, gt=0, description="a queued SMS fails after this")
    keep: int = Field(10000, ge=100, le=1_000_000, description="finished SMS kept per direction")
    ussd_timeout_s: float = Field(30.0, gt=0, le=120)
    webhook: WebhookSettings = Field(
        WebhookSettings(), description="where received SMS are POSTed as sms.received"
    )


class GatewaySettings(Section):
    """The modems of a SIM gateway, how long start-up may wait for them, and SMS."""

    modems: tuple[ModemEntry, ...] = ()
    ready_timeout_s: float = Field(60.0, gt=0)
    sms: SmsSettings = SmsSettings()
