"""The appliance's typed, frozen settings (validated once in the composition root)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from drivers.runtime.settings_base import ApiToken, Section, ServiceSettings

Profile = Literal["branch", "hotel", "sim-gateway"]


class StoreSettings(Section):
    """The LMDB store: its map size bounds how much an offline box can buffer."""

    map_size_mb: int = Field(1024, ge=16, le=1024 * 1024)


class ApiSettings(Section):
    """Local API access."""

    tokens: tuple[ApiToken, ...] = ()


class Extension(Section):
    """A SIP extension that registers with the appliance."""

    number: str = Field(pattern=r"^[0-9]{2,8}$")
    password: str = Field(min_length=8, max_length=128)
    name: str = ""


class SipSettings(Section):
    """The PBX's SIP side: extensions (the dial plan builds on these)."""

    domain: str = "callmesh.local"
    extensions: tuple[Extension, ...] = ()


class ApplianceSettings(ServiceSettings):
    """Everything an appliance reads from its configuration."""

    site_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    profile: Profile
    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    sip: SipSettings = SipSettings()
