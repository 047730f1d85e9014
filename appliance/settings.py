"""The appliance's typed, frozen settings (validated once in the composition root)."""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from appliance.contact.agent_codes import overlaps
from appliance.contact.settings import ContactSettings
from appliance.gateway.settings import GatewaySettings
from appliance.hotel.settings import HotelSettings
from appliance.pbx.settings import PbxSettings
from drivers.daemon.settings_base import ApiToken, Section, ServiceSettings, check_distinct_tokens
from drivers.net.plan import Desired, Link, Route, WireGuardPeer
from drivers.sip.kamailio_config import check_domain
from drivers.sync.keys import check_z85_key

Profile = Literal["branch", "hotel", "sim-gateway"]


class StoreSettings(Section):
    """The LMDB store: its map size bounds how much an offline box can buffer."""

    map_size_mb: int = Field(1024, ge=16, le=1024 * 1024)
    prune_interval_s: float = Field(600.0, gt=0, description="how often old entries go")
    alarm_percent: float = Field(80.0, gt=0, le=100, description="store-high-water alarm")


class DoctorSettings(Section):
    """The doctor the service runs on itself, its report sent to HQ (docs/doctor.md)."""

    first_run_s: float = Field(60.0, ge=0, description="first self-test after start")
    interval_h: float = Field(6.0, ge=0, description="self-test period; 0: only at start")
    upload: bool = Field(True, description="self-test and send reports to HQ (needs sync)")


class ApiSettings(Section):
    """Local API access."""

    tokens: tuple[ApiToken, ...] = ()

    @field_validator("tokens")
    @classmethod
    def _distinct(cls, tokens: tuple[ApiToken, ...]) -> tuple[ApiToken, ...]:
        check_distinct_tokens(tokens)
        return tokens


class Extension(Section):
    """A SIP extension that registers with the appliance."""

    number: str = Field(pattern=r"^[0-9]{2,8}$")
    password: str = Field(min_length=8, max_length=128)
    name: str = ""


class SipSettings(Section):
    """The PBX's SIP side: extensions (the dial plan builds on these)."""

    domain: str = "callmesh.local"
    extensions: tuple[Extension, ...] = ()

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        return check_domain(value)


ENDPOINT_PATTERN = r"^(tcp|ipc)://.+"


class SyncSettings(Section):
    """The link to the aggregator: ZeroMQ DEALER with CurveZMQ."""

    enabled: bool = False
    endpoint: str = Field("tcp://127.0.0.1:5570", pattern=ENDPOINT_PATTERN)
    endpoints: list[str] = Field(
        default_factory=list,
        description="aggregator nodes tried in turn; empty means [endpoint]",
        max_length=64,
    )
    server_public_key: str = ""
    key_file: Path | None = Field(None, description="site .key_secret; default data_dir/keys")
    batch_size: int = Field(5000, ge=1, le=10_000)
    window: int = Field(4, ge=1, le=64)
    ack_timeout_s: float = Field(15.0, gt=0)
    hello_timeout_s: float = Field(5.0, gt=0)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    chunk_kib: int = Field(
        1024,
        ge=4,
        le=1024,
        description="recording chunk size; each chunk costs a hand-off between threads at "
        "both ends, so larger chunks upload faster (HQ answers at least once a second while "
        "chunks arrive, so the stall check holds on slow links)",
    )
    status_interval_s: float = Field(10.0, gt=0)
    disk_warn_percent: float = Field(80.0, gt=0, le=100)

    @field_validator("server_public_key")
    @classmethod
    def _z85(cls, value: str) -> str:
        if value:
            check_z85_key(value)
        return value

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: list[str]) -> list[str]:
        for endpoint in value:
            if not re.match(ENDPOINT_PATTERN, endpoint):
                raise ValueError(f"sync.endpoints: {endpoint!r} is not tcp://… or ipc://…")
        if len(set(value)) != len(value):
            raise ValueError("sync.endpoints lists an endpoint twice")
        return value

    def nodes(self) -> list[str]:
        """The aggregator endpoints in the order they are tried."""
        return self.endpoints or [self.endpoint]

    @model_validator(mode="after")
    def _key_needed(self) -> SyncSettings:
        if self.enabled and not self.server_public_key:
            raise ValueError("sync.server_public_key is required when sync is enabled")
        return self


class RecordingSettings(Section):
    """Uploads to HQ, and local retention of recordings HQ has confirmed."""

    retention_days: float = Field(30.0, ge=0)
    min_free_mb: int = Field(1024, ge=0)
    upload_max_tries: int = Field(
        5, ge=1, le=1000, description="failed uploads before a recording is quarantined"
    )
    upload_retry_s: float = Field(
        30.0, gt=0, le=86400, description="pause in offers after a failed try or a full quota"
    )


class NetInterface(Section):
    """An existing device, or a VLAN on one (``vlan_id`` + ``parent``): addresses, MTU."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,15}$")
    parent: str | None = None
    vlan_id: int | None = Field(None, ge=1, le=4094)
    addresses: tuple[str, ...] = Field((), description="CIDR, e.g. 10.1.0.10/24")
    mtu: int | None = Field(None, ge=576, le=9216)

    @field_validator("addresses")
    @classmethod
    def _cidr(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            ipaddress.ip_interface(address)
        return value

    @model_validator(mode="after")
    def _vlan_parent(self) -> NetInterface:
        if (self.vlan_id is None) != (self.parent is None):
            raise ValueError("a VLAN interface needs both vlan_id and parent")
        return self


class NetRoute(Section):
    """A static route, e.g. to the company network."""

    destination: str = Field(description="CIDR")
    gateway: str | None = None
    device: str | None = None

    @field_validator("destination")
    @classmethod
    def _network(cls, value: str) -> str:
        ipaddress.ip_network(value, strict=False)
        return value


class WireGuardTunnel(Section):
    """The WireGuard tunnel to HQ (needs kernel support; reported if missing)."""

    interface: str = Field("wg-hq", pattern=r"^[A-Za-z0-9_.-]{1,15}$")
    address: str = Field(description="this end's address, CIDR")
    private_key_file: Path
    peer_public_key: str = Field(min_length=44, max_length=44)
    endpoint: str = Field(pattern=r"^.+:[0-9]{1,5}$", description="host:port of HQ")
    allowed_ips: tuple[str, ...] = Field(min_length=1)
    keepalive_s: int = Field(25, ge=0, le=3600)


class NetworkSettings(Section):
    """Interfaces, voice VLAN, static routes and the tunnel to HQ, applied at start-up."""

    manage: bool = Field(False, description="apply this section at start-up")
    dry_run: bool = Field(False, description="only log and report what would change")
    interfaces: tuple[NetInterface, ...] = ()
    routes: tuple[NetRoute, ...] = ()
    wireguard: WireGuardTunnel | None = None

    def desired(self) -> Desired:
        """The network this section describes, for the driver's planner."""
        links = [
            Link(
                i.name,
                "vlan" if i.vlan_id is not None else "device",
                i.parent,
                i.vlan_id,
                i.addresses,
                i.mtu,
            )
            for i in self.interfaces
        ]
        tunnels = {}
        if self.wireguard is not None:
            wg = self.wireguard
            links.append(Link(wg.interface, "wireguard", addresses=(wg.address,)))
            tunnels[wg.interface] = WireGuardPeer(
                wg.peer_public_key,
                wg.endpoint,
                wg.allowed_ips,
                str(wg.private_key_file),
                wg.keepalive_s,
            )
        routes = tuple(Route(r.destination, r.gateway, r.device) for r in self.routes)
        return Desired(tuple(links), routes, tunnels)


def zone_name(value: str) -> str:
    """``value`` if it names an IANA time zone; ValueError saying what would be valid."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin"
        ) from None
    return value


class SiteSettings(Section):
    """Facts about the site: its time zone sets local days, months and calling hours."""

    timezone: str = "UTC"
    name: str = Field("", max_length=100, description="for people: reports, doctor, HQ")
    region: str = Field("", pattern=r"^[A-Za-z0-9_.-]{0,64}$", description="e.g. eu-central")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return zone_name(value)


class HourWindow(Section):
    """Local hours on some days (0 = Monday); an ``end`` before ``start`` wraps past midnight."""

    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    end: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    days: tuple[int, ...] = Field((0, 1, 2, 3, 4, 5, 6), min_length=1)

    @field_validator("days")
    @classmethod
    def _days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= d <= 6 for d in value):
            raise ValueError("days are 0 (Monday) to 6 (Sunday)")
        return value


class SimLimitSettings(Section):
    """Limits of a SIM or SIM group; unset means no limit, no ``hours`` means any time."""

    calls_per_day: int | None = Field(None, ge=0)
    minutes_per_day: float | None = Field(None, ge=0)
    minutes_per_month: float | None = Field(None, ge=0)
    max_call_s: int | None = Field(None, ge=1)
    hours: tuple[HourWindow, ...] | None = None


class SimCardSettings(Section):
    """One SIM by ICCID: its group and its own limits (over the group's)."""

    iccid: str = Field(pattern=r"^[0-9]{18,22}F?$")
    group: str = "default"
    limits: SimLimitSettings = SimLimitSettings()


class SimSettings(Section):
    """SIM usage policy on a SIM gateway: limits, channel choice, failures, review, switching."""

    strategy: Literal["round-robin", "least-used", "fixed-order"] = "round-robin"
    groups: dict[str, SimLimitSettings] = Field(default_factory=dict)
    sims: tuple[SimCardSettings, ...] = ()
    max_failures: int = Field(5, ge=1, description="failed calls in a row that stop a SIM")
    effective_call_s: float = Field(10.0, ge=0, description="answered calls this long count")
    review_window: int = Field(20, ge=5, description="recent calls compared with the baseline")
    review_min_baseline_calls: int = Field(20, ge=1)
    review_ratio: float = Field(0.5, gt=0, lt=1, description="flag below ratio x baseline")
    switch_cooldown_s: float = Field(300.0, ge=0, description="between two switches of a modem")
    unregistered_grace_s: float = Field(
        120.0, ge=0, description="unregistered or SIM missing this long before switching slot"
    )
    evaluate_interval_s: float = Field(5.0, gt=0)
    status_interval_s: float = Field(60.0, gt=0, description="SIM status to HQ at least this often")


class CampaignSettings(Section):
    """An outbound campaign's own calling hours and attempt limit (over the site's)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    windows: tuple[HourWindow, ...] = ()
    max_attempts_per_day: int | None = Field(None, ge=1)
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else zone_name(value)


class ExtensionBinding(Section):
    """An extension bound to compliance: its break-outs are checked by its campaign's rules
    (else the site's)."""

    campaign: str | None = None


class ComplianceSettings(Section):
    """Outbound compliance for API, campaign and bound extensions' calls, and for SMS."""

    dnc: tuple[str, ...] = Field((), description="site do-not-call numbers from config")
    max_attempts_per_day: int = Field(3, ge=1, description="per destination, all campaigns")
    windows: tuple[HourWindow, ...] = Field((), description="site calling hours; empty: any")
    campaigns: tuple[CampaignSettings, ...] = ()
    extensions: dict[str, ExtensionBinding] = Field(
        default_factory=dict, description="extensions whose break-outs are checked"
    )

    @model_validator(mode="after")
    def _bound_campaigns(self) -> ComplianceSettings:
        known = {c.id for c in self.campaigns}
        for extension, binding in self.extensions.items():
            if binding.campaign is not None and binding.campaign not in known:
                raise ValueError(
                    f"compliance.extensions.{extension}.campaign: {binding.campaign!r} is not "
                    f"in compliance.campaigns (known: {', '.join(sorted(known)) or 'none'})"
                )
        return self


class ApplianceSettings(ServiceSettings):
    """Everything an appliance reads from its configuration."""

    site_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    profile: Profile
    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    sip: SipSettings = SipSettings()
    sync: SyncSettings = SyncSettings()
    recordings: RecordingSettings = RecordingSettings()
    network: NetworkSettings = NetworkSettings()
    site: SiteSettings = SiteSettings()
    sim: SimSettings = SimSettings()
    compliance: ComplianceSettings = ComplianceSettings()
    gateway: GatewaySettings = GatewaySettings()
    pbx: PbxSettings = PbxSettings()
    hotel: HotelSettings = HotelSettings()
    contact: ContactSettings = ContactSettings()
    doctor: DoctorSettings = DoctorSettings()

    @model_validator(mode="after")
    def _gsm_channels(self) -> ApplianceSettings:
        known = {m.channel for m in self.gateway.modems}
        for group in self.pbx.gsm.groups:
            unknown = sorted(set(group.channels) - known)
            if unknown:
                raise ValueError(
                    f"pbx.gsm.groups.{group.name}: channels {', '.join(unknown)} are not in "
                    f"gateway.modems (known: {', '.join(sorted(known)) or 'none'})"
                )
        return self

    @model_validator(mode="after")
    def _queues_served(self) -> ApplianceSettings:
        known = {e.number for e in self.sip.extensions}
        groups = {g.number for g in self.pbx.dialplan.ring_groups}
        problems = []
        for name, queue in self.contact.queues.items():
            unknown = sorted(set(queue.numbers) - known - set(queue.remote))
            if unknown:
                problems.append(f"contact.queues.{name}.agents: {', '.join(unknown)} are not "
                                "in sip.extensions (another site's: remote: true)")  # fmt: skip
            local = sorted(set(queue.remote) & known)
            if local:
                problems.append(f"contact.queues.{name}.agents: {', '.join(local)} are in "
                                "sip.extensions, not remote")  # fmt: skip
            if queue.number in known:
                problems.append(f"contact.queues.{name}.number: {queue.number} is an extension")
            if queue.number in groups:
                problems.append(f"contact.queues.{name}.number: {queue.number} is a ring group")
            if queue.hold_prompt and queue.hold_prompt not in self.pbx.media.prompts:
                problems.append(f"contact.queues.{name}.hold_prompt: {queue.hold_prompt} is "
                                "not in pbx.media.prompts")  # fmt: skip
        if self.contact.queues and (not self.pbx.enabled or self.pbx.media.workers == 0):
            problems.append("contact.queues need pbx.enabled and pbx.media.workers > 0")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _supervisors_known(self) -> ApplianceSettings:
        known = {e.number for e in self.sip.extensions}
        unknown = sorted(set(self.contact.supervisors) - known)
        problems = [f"contact.supervisors: {', '.join(unknown)} are not in sip.extensions"
                    ] if unknown else []  # fmt: skip
        pbx_codes = self.pbx.dialplan.feature_codes
        codes = self.contact.supervision.codes
        problems += [f"contact.supervision.codes.{mode}: {code} overlaps the feature code {other}"
                     for mode, code in codes.model_dump().items()
                     for other in (pbx_codes.echo, pbx_codes.room)
                     if code.startswith(other) or other.startswith(code)]  # fmt: skip
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _agent_codes_fit(self) -> ApplianceSettings:
        codes = self.contact.agent_codes
        if codes is None:
            return self
        pbx_codes, rooms = self.pbx.dialplan.feature_codes, self.hotel.codes
        others = [pbx_codes.echo, pbx_codes.room]
        if self.hotel.rooms:
            others += [rooms.room_status, rooms.minibar, rooms.wake_up, rooms.wake_up_clear,
                       rooms.dnd_on, rooms.dnd_off]  # fmt: skip
        problems = [f"contact.agent_codes overlap other feature codes: {pair}"
                    for pair in overlaps(codes.codes, others)]  # fmt: skip
        if codes.prompt is not None and codes.prompt not in self.pbx.media.prompts:
            problems.append(f"contact.agent_codes.prompt: {codes.prompt!r} is not in "
                            f"pbx.media.prompts")  # fmt: skip
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _bound_extensions(self) -> ApplianceSettings:
        known = {e.number for e in self.sip.extensions}
        unknown = sorted(set(self.compliance.extensions) - known)
        if unknown:
            raise ValueError(
                f"compliance.extensions: {', '.join(unknown)} are not in sip.extensions"
            )
        return self

    @model_validator(mode="after")
    def _room_extensions(self) -> ApplianceSettings:
        known = {e.number for e in self.sip.extensions}
        named = {r.extension for r in self.hotel.rooms} | {
            self.hotel.vacant_redirect or "",
            self.hotel.dnd.front_desk or "",
        }
        unknown = sorted(named - known - {""})
        if unknown:
            raise ValueError(
                "hotel.rooms, hotel.vacant_redirect, hotel.dnd.front_desk: extensions "
                f"{', '.join(unknown)} are not in sip.extensions"
            )
        return self

    def key_file(self) -> Path:
        """The site's CurveZMQ secret key file."""
        return self.sync.key_file or self.data_dir / "keys" / f"{self.site_id}.key_secret"
