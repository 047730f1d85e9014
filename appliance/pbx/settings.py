"""The PBX's settings section (``pbx:`` in the appliance configuration)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from appliance.ivr.settings import IvrFlowSettings
from drivers.daemon.settings_base import Section
from drivers.sip.kamailio_config import SCAN_PREFIXES, SCANNER_AGENTS, check_ipv4

CosLevel = Literal["internal", "local", "national", "international"]
RecordingPolicy = Literal["always", "never", "on-demand"]
ScannerAgent = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 ._/-]{2,40}$")]
ScanPrefix = Annotated[str, StringConstraints(pattern=r"^(\+[0-9]{0,6}|[0-9]{1,6})$")]


class TrunkAuth(Section):
    """Digest credentials the trunk challenges our INVITEs for (401/407)."""

    username: str = Field(min_length=1, max_length=64, pattern=r"^[^:\s\"]+$")
    password: str = Field(min_length=1, max_length=64, pattern=r"^[^:\s\"]+$")
    realm: str = Field(min_length=1, max_length=64, pattern=r"^[^:\s\"]+$")
    registration: bool = Field(False, description="REGISTER with the trunk as username@realm")
    expires_s: int = Field(600, ge=60, le=86400)


class Trunk(Section):
    """A SIP trunk reached by address; calls from it are trusted by source address and port.

    With ``auth``, INVITEs the trunk challenges are answered with digest credentials.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    host: str
    port: int = Field(5060, ge=1, le=65535)
    auth: TrunkAuth | None = None

    @field_validator("host")
    @classmethod
    def _ip(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value


class OutboundRoute(Section):
    """Dialled numbers matching ``pattern`` go to ``trunk`` after digit manipulation.

    Pattern: digits, ``X`` any digit, ``N`` 2-9, ``Z`` 1-9, ``[1-5]`` sets, and a final
    ``.`` for one or more further digits.
    """

    name: str = Field(min_length=1, max_length=64)
    pattern: str = Field(min_length=1, max_length=40)
    trunk: str = Field(description="a SIP trunk or a GSM trunk group (pbx.gsm.groups)")
    cos: CosLevel = "national"
    strip: int = Field(0, ge=0, le=10)
    prepend: str = Field("", pattern=r"^\+?[0-9]{0,15}$")
    caller_id: str = Field(
        "", pattern=r"^(\+?[0-9]{2,16})?$", description="SIP trunks only; GSM presents the SIM's"
    )
    recording: RecordingPolicy | None = None


class RingGroup(Section):
    """A number that rings several extensions at once or one after another."""

    number: str = Field(pattern=r"^[0-9]{2,8}$")
    members: tuple[str, ...] = Field(min_length=1, max_length=16)
    strategy: Literal["simultaneous", "sequential"] = "simultaneous"
    ring_s: int = Field(20, ge=2, le=300)


class InboundRoute(Section):
    """A number the site owns, called from a trunk: an extension, ring group or media target.

    ``target``: an extension or ring group number, ``announce:<prompt>`` or ``ivr:<flow>``.
    """

    did: str = Field(pattern=r"^\+?[0-9]{2,16}$")
    target: str
    recording: RecordingPolicy | None = None


class Forward(Section):
    """Where an extension's calls go when it is busy, does not answer or is not registered.

    Each is a target as for inbound routes: extension, ring group, ``announce:<prompt>``
    or ``ivr:<flow>``.
    """

    busy: str | None = None
    no_answer: str | None = None
    unavailable: str | None = None


class FeatureCodes(Section):
    """Star codes extensions dial for services of the media workers."""

    echo: str = Field("*43", pattern=r"^\*[0-9]{1,4}$")
    room: str = Field("*3", pattern=r"^\*[0-9]{1,4}$", description="+ room number (1-4 digits)")


class DialPlanSettings(Section):
    """Ring groups, trunks, outbound and inbound routes, class of service per extension."""

    owned_numbers: tuple[str, ...] = ()
    trunks: tuple[Trunk, ...] = ()
    outbound: tuple[OutboundRoute, ...] = ()
    ring_groups: tuple[RingGroup, ...] = ()
    inbound: tuple[InboundRoute, ...] = ()
    class_of_service: dict[str, CosLevel] = Field(default_factory=dict)
    default_cos: CosLevel = "national"
    forward: dict[str, Forward] = Field(default_factory=dict)
    feature_codes: FeatureCodes = FeatureCodes()
    recording: RecordingPolicy = "always"
    recording_by_extension: dict[str, RecordingPolicy] = Field(default_factory=dict)


class WebhookSettings(Section):
    """Where notifications are POSTed, signed with ``secret`` (off without a URL).

    The PBX posts call started/answered/ended; the SIM gateway received SMS.
    """

    url: str | None = Field(None, pattern=r"^https?://")
    secret: str = Field("", max_length=256)
    max_attempts: int = Field(6, ge=1, le=20)
    timeout_s: float = Field(5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _secret_with_url(self) -> WebhookSettings:
        if self.url and len(self.secret) < 16:
            raise ValueError("secret must be at least 16 characters when url is set")
        return self


class PromptSettings(Section):
    """An announcement: a WAV file (8 kHz, mono, 16-bit) or a tone, played for ``seconds``."""

    file: str | None = None
    tone_hz: int = Field(0, ge=0, le=4000)
    on_ms: int = Field(1000, ge=10, le=60000)
    off_ms: int = Field(0, ge=0, le=60000)
    seconds: float = Field(4.0, gt=0, le=600)

    @model_validator(mode="after")
    def _one_source(self) -> PromptSettings:
        if bool(self.file) == bool(self.tone_hz):
            raise ValueError("set exactly one of file or tone_hz")
        return self


class IvrSettings(Section):
    """Play ``prompt``, read one digit, send the caller to ``options[digit]``."""

    prompt: str
    options: dict[str, str] = Field(min_length=1)
    timeout_s: float = Field(5.0, gt=0, le=60)
    retries: int = Field(2, ge=0, le=10)
    default: str | None = None

    @field_validator("options")
    @classmethod
    def _digits(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if k not in "0123456789*#" or len(k) != 1]
        if bad:
            raise ValueError(f"option keys must be one DTMF digit, not {', '.join(bad)}")
        return value


class MediaSettings(Section):
    """The pool of pjsua2 media workers (announcements, IVR, conferences, click-to-dial)."""

    workers: int = Field(2, ge=0, le=32)
    port_base: int = Field(5080, ge=1024, le=65000)
    calls_per_worker: int = Field(4, ge=1, le=4)
    prompts: dict[str, PromptSettings] = Field(default_factory=dict)
    ivr: dict[str, IvrSettings] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _prompts_known(self) -> MediaSettings:
        missing = sorted({f.prompt for f in self.ivr.values()} - set(self.prompts))
        if missing:
            raise ValueError(f"ivr prompts not defined in prompts: {', '.join(missing)}")
        return self


class PeeringSettings(Section):
    """Calls to and from other sites' PBXs (inter-site trunks over the company network).

    ``secret`` signs and checks every inter-site INVITE (appliance/routing/peering.py);
    ``secrets`` overrides it per peer site (the same value on both sites of a pair).
    Without any secret, calls to other sites are not routed and calls from them refused.
    """

    secret: str = Field("", max_length=256)
    secrets: dict[str, str] = Field(default_factory=dict)
    max_skew_s: int = Field(30, ge=1, le=3600)
    hop_timer_ms: int = Field(1000, ge=200, le=30000)
    probe_interval_s: float = Field(1.0, gt=0, le=60)
    probe_timeout_s: float = Field(0.5, gt=0, le=10)
    down_after: int = Field(2, ge=1, le=10)
    routed_cos: CosLevel = "national"

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < 16:
            raise ValueError("secret must be at least 16 characters")
        return value

    @field_validator("secrets")
    @classmethod
    def _each_long_enough(cls, value: dict[str, str]) -> dict[str, str]:
        short = sorted(site for site, secret in value.items() if len(secret) < 16)
        if short:
            raise ValueError(f"secrets must be at least 16 characters (sites {short})")
        return value

    def secret_for(self, site: str) -> str:
        """The secret shared with ``site`` ("" when none is configured)."""
        return self.secrets.get(site, self.secret)


class GsmGroup(Section):
    """GSM channels an outbound route can use, and how the next call picks one of them."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    channels: tuple[str, ...] = Field(min_length=1)
    strategy: Literal["round-robin", "least-used", "fixed-order"] | None = Field(
        None, description="default: sim.strategy"
    )


class GsmInbound(Section):
    """Where calls arriving on one SIM (by ICCID) ring: an extension or ring group."""

    iccid: str = Field(pattern=r"^[0-9]{18,20}F?$")
    target: str


class GsmSettings(Section):
    """GSM channels as PBX trunks: media workers bridging the modems' PCM, groups, inbound."""

    port_base: int = Field(5120, ge=1024, le=65000)
    channels_per_worker: int = Field(4, ge=1, le=4)
    jitter_frames: int = Field(2, ge=1, le=10, description="downlink frames buffered (20 ms)")
    max_attempts: int = Field(3, ge=1, le=16, description="channels one call may try")
    reserve_s: float = Field(5.0, gt=0, le=60, description="a picked channel waits this long")
    groups: tuple[GsmGroup, ...] = ()
    inbound: tuple[GsmInbound, ...] = ()
    default_inbound: str | None = Field(None, description="target for SIMs without a route")


class PbxSettings(Section):
    """Kamailio, rtpengine and call-event ports, timers and anti-flood limits.

    Phones and peers reach SIP and RTP on ``sip_host``; the control ports (evapi, the route
    endpoint, rtpengine's ng, the media workers' SIP) always listen on 127.0.0.1.
    """

    enabled: bool = False
    sip_host: str = Field("127.0.0.1", description="IPv4 address for SIP and RTP")
    sip_port: int = Field(5060, ge=1, le=65535)
    evapi_port: int = Field(5065, ge=1, le=65535)
    rtpengine_ng_port: int = Field(2223, ge=1, le=65535)
    # Below Linux's ephemeral range (32768-60999), where any outgoing socket may take a port.
    rtp_port_min: int = Field(16384, ge=1024, le=65535)
    rtp_port_max: int = Field(32767, ge=1024, le=65535)
    kamailio_children: int = Field(8, ge=1, le=64)
    rtpengine_threads: int = Field(2, ge=1, le=64)
    fr_timer_ms: int = Field(2000, ge=500, le=30000)
    no_answer_s: int = Field(30, ge=2, le=600)
    min_expires_s: int = Field(60, ge=10, le=3600)
    max_expires_s: int = Field(3600, ge=60, le=86400)
    pike_window_s: int = Field(2, ge=1, le=60)
    pike_requests: int = Field(40, ge=5, le=100000)
    ban_s: int = Field(300, ge=1, le=86400)
    pike_exempt: tuple[str, ...] = ()
    auth_fail_limit: int = Field(
        10, ge=2, le=1000, description="failed digest checks that ban the source for ban_s"
    )
    auth_fail_window_s: int = Field(
        60, ge=1, le=86400, description="a source's failures are forgotten after this long quiet"
    )
    scanner_user_agents: tuple[ScannerAgent, ...] = Field(
        SCANNER_AGENTS, description="User-Agent substrings (any case) banned on sight"
    )
    scan_prefixes: tuple[ScanPrefix, ...] = Field(
        SCAN_PREFIXES,
        description="international prefixes: an unauthenticated OPTIONS, REGISTER or INVITE"
        " for such a number from a non-extension, untrusted source bans the source",
    )
    anchor_media: bool = True
    record_calls: bool = True
    recording_delete_delay_s: int = Field(1, ge=0, le=30)
    max_call_s: int = Field(14400, ge=60, le=86400)
    max_calls: int = Field(
        0,
        ge=0,
        le=100_000,
        description="dialogs the edge carries at once; a new call past it gets 503 (0: no cap)",
    )
    retry_after_s: int = Field(
        30, ge=1, le=3600, description="the Retry-After of a 503 sent past max_calls"
    )
    media_timeout_s: int = Field(
        60, ge=3, le=3600, description="an answered call without RTP this long is ended"
    )
    route_port: int = Field(5066, ge=1, le=65535)
    dialplan: DialPlanSettings = DialPlanSettings()
    media: MediaSettings = MediaSettings()
    peering: PeeringSettings = PeeringSettings()
    gsm: GsmSettings = GsmSettings()
    webhook: WebhookSettings = WebhookSettings()
    ivr: IvrFlowSettings = IvrFlowSettings()

    @field_validator("sip_host")
    @classmethod
    def _sip_host(cls, value: str) -> str:
        return check_ipv4(value)

    @field_validator("pike_exempt")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            ipaddress.ip_address(address)
        return value

    @model_validator(mode="after")
    def _port_range(self) -> PbxSettings:
        if self.rtp_port_max - self.rtp_port_min < 4:
            raise ValueError("rtp_port_max must be at least rtp_port_min + 4 (4 ports per call)")
        return self
