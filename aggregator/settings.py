"""The aggregator's typed, frozen settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from drivers.daemon.settings_base import (
    HttpSettings,
    Section,
    ServiceSettings,
    check_distinct_tokens,
)
from drivers.sync.keys import check_z85_key


class DatabaseSettings(Section):
    """The report store: SQLite in the data directory unless a URL is given."""

    url: str | None = Field(None, description="SQLAlchemy URL, e.g. postgresql://user@host/db")
    keep_months: int | None = Field(
        None,
        ge=1,
        description="PostgreSQL: drop the CDRs of months before the current one and the N "
        "before it, at start and daily (the rollups stay); None keeps every CDR",
    )

    @model_validator(mode="after")
    def _retention_needs_postgres(self) -> DatabaseSettings:
        if self.keep_months is not None and not (self.url or "").startswith("postgresql"):
            raise ValueError(
                "database.keep_months drops PostgreSQL partitions: set database.url to a "
                "postgresql:// URL, or remove keep_months (SQLite keeps every CDR)"
            )
        return self


HqRole = Literal["admin", "hq-viewer", "site-viewer"]


class HqToken(Section):
    """A bearer token for the HQ API; a site-viewer sees only ``sites``.

    ``sites`` is only valid with an explicit ``role: site-viewer``, which needs at least
    one site: a token that names sites but would read every site is refused at load.
    """

    name: str = Field(min_length=1, max_length=64)
    token: str = Field(min_length=16, max_length=256)
    role: HqRole = "hq-viewer"
    sites: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _unambiguous_scope(self) -> HqToken:
        if self.sites and "role" not in self.model_fields_set:
            raise ValueError(
                f"token {self.name!r} has 'sites' but no 'role'; "
                "set role: site-viewer to limit it to those sites"
            )
        if self.sites and self.role != "site-viewer":
            raise ValueError(
                f"token {self.name!r}: 'sites' only applies to role site-viewer "
                f"(role {self.role} reads every site); remove 'sites' or change 'role'"
            )
        if self.role == "site-viewer" and not self.sites:
            raise ValueError(f"token {self.name!r}: role site-viewer needs 'sites' (a list)")
        return self


class ApiSettings(Section):
    """HQ API access."""

    tokens: tuple[HqToken, ...] = ()

    @field_validator("tokens")
    @classmethod
    def _distinct(cls, tokens: tuple[HqToken, ...]) -> tuple[HqToken, ...]:
        check_distinct_tokens(tokens)
        return tokens


class ReportSettings(Section):
    """Limits of the HQ reports."""

    max_span_days: int = Field(
        366, ge=1, le=3660, description="longest from-to range a report may cover"
    )


class SiteKey(Section):
    """A site allowed to connect, bound to its CurveZMQ public key."""

    site_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    public_key: str
    revoked: bool = False

    @field_validator("public_key")
    @classmethod
    def _z85(cls, value: str) -> str:
        check_z85_key(value)
        return value


class IngestSettings(Section):
    """The ROUTER socket appliances connect to, and who may connect."""

    bind: str = Field("tcp://127.0.0.1:5570", pattern=r"^(tcp|ipc)://.+")
    key_file: Path | None = Field(None, description="server .key_secret; default data_dir/keys")
    sites: tuple[SiteKey, ...] = ()
    chunk_credit: int = Field(16, ge=1, le=256)
    max_pending: int = Field(
        384,
        ge=1,
        le=10_000,
        description="messages taken in and not yet answered, all sites together; at the "
        "limit HQ stops reading and libzmq pushes back on the senders",
    )
    site_pending: int = Field(
        48,
        ge=1,
        le=10_000,
        description="messages of one site taken in and not yet answered; more are refused "
        "site-busy (keep it above sync.window + chunk_credit, so a working site never "
        "gets there)",
    )
    refusal_rate: float = Field(
        2000,
        gt=0,
        description="refused records and messages a second a site may send before HQ "
        "refuses everything from it undecoded (site-throttled)",
    )
    refusal_burst: int = Field(
        5_000, ge=1, description="refusals a site may spend at once before throttling"
    )
    receive_hwm: int = Field(
        64, ge=1, le=10_000, description="messages libzmq queues per connection (ZMQ_RCVHWM)"
    )
    site_byte_rate_mb: float = Field(
        64.0,
        gt=0,
        description="MB a second a site may send on average; past its burst the site is "
        "banned (aggregator/site_gate.py)",
    )
    site_byte_burst_mb: float = Field(
        256.0, gt=0, description="MB a site may send at once before its byte rate applies"
    )
    ban_s: float = Field(
        60.0,
        gt=0,
        le=86_400,
        description="how long a site that spent its refusal or byte budget stays banned: "
        "its connections are cut and ZAP refuses its key",
    )


class EnrolmentSettings(Section):
    """One-time enrolment codes and what an enrolled site is told (docs/enrolment.md)."""

    code_ttl_h: float = Field(24.0, gt=0, le=24 * 30, description="a new code's lifetime")
    max_failures: int = Field(
        5, ge=1, le=100, description="wrong codes given for a site before its code is void"
    )
    attempts_per_minute: float = Field(
        10.0, gt=0, le=6000, description="enrol requests one client address may make a minute"
    )
    endpoints: tuple[str, ...] = Field(
        (),
        description="ingest endpoints an enrolled site connects to (tcp://hq.example:5570); "
        "default: ingest.bind when it is not a wildcard address",
    )
    refresh_s: float = Field(
        1.0, gt=0, le=60, description="how often ZAP re-reads enrolled and revoked site keys"
    )

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for endpoint in value:
            if not endpoint.startswith(("tcp://", "ipc://")):
                raise ValueError(f"{endpoint!r}: an endpoint is tcp://HOST:PORT or ipc://PATH")
        return value


class RecordingStoreSettings(Section):
    """Recordings sites upload: size cap, per-site quota, retention, stale uploads."""

    max_bytes: int = Field(
        512 * 1024 * 1024, ge=1, description="largest recording a site may offer"
    )
    site_quota_mb: int = Field(
        10240, ge=1, description="disk a site's stored and incoming recordings may use"
    )
    retention_days: float = Field(
        365.0, gt=0, description="stored recordings older than this are deleted (expired)"
    )
    upload_idle_s: float = Field(
        900.0, gt=0, description="an upload with no chunk for this long is closed, .part removed"
    )
    sweep_interval_s: float = Field(60.0, gt=0, le=3600)


class RoutingSettings(Section):
    """Routing snapshots: how often connected sites are checked for a newer table."""

    push_interval_s: float = Field(0.5, gt=0, le=60)
    keep_updates: int = Field(16, ge=1, le=1000, description="recent updates kept per site")


class ConsoleSettings(Section):
    """The HQ web console's sessions."""

    session_idle_minutes: float = Field(
        30.0, gt=0, le=1440, description="a session ends after this long without a request"
    )
    max_sessions: int = Field(
        1000, ge=1, le=100_000, description="sessions kept; the least recently used go first"
    )


class AggregatorSettings(ServiceSettings):
    """Everything the aggregator reads from its configuration."""

    http: HttpSettings = HttpSettings(port=8800)
    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    reports: ReportSettings = ReportSettings()
    ingest: IngestSettings = IngestSettings()
    routing: RoutingSettings = RoutingSettings()
    recordings: RecordingStoreSettings = RecordingStoreSettings()
    console: ConsoleSettings = ConsoleSettings()
    enrolment: EnrolmentSettings = EnrolmentSettings()

    def database_url(self) -> str:
        """The SQLAlchemy URL in force."""
        return self.database.url or f"sqlite:///{self.data_dir / 'aggregator.db'}"

    def key_file(self) -> Path:
        """The aggregator's CurveZMQ secret key file."""
        return self.ingest.key_file or self.data_dir / "keys" / "aggregator.key_secret"

    def enrol_endpoints(self) -> tuple[str, ...]:
        """The ingest endpoints an enrolled site is given."""
        if self.enrolment.endpoints:
            return self.enrolment.endpoints
        wildcard = any(w in self.ingest.bind for w in ("://*", "://0.0.0.0", "://[::]"))
        return () if wildcard else (self.ingest.bind,)

    def recordings_dir(self) -> Path:
        """Where uploaded recordings are stored, by content hash."""
        return self.data_dir / "recordings"
