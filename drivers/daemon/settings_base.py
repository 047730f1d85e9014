"""Settings sections every callmesh service shares."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["admin", "operator", "viewer"]


class Section(BaseModel):
    """A frozen settings section that refuses unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class HttpSettings(Section):
    """Where the service's HTTP API, /healthz and /metrics listen."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)

    @field_validator("host")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("must be an IP address such as 127.0.0.1 or ::1") from None
        return value


class LogSettings(Section):
    """Log level and format (human lines or JSON objects)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["human", "json"] = "human"


class ApiToken(Section):
    """A bearer token for the HTTP API and the role it grants."""

    name: str = Field(min_length=1, max_length=64)
    token: str = Field(min_length=16, max_length=256)
    role: Role = "viewer"


class NamedToken(Protocol):
    """A configured API token: its name and its secret."""

    @property
    def name(self) -> str: ...

    @property
    def token(self) -> str: ...


def check_distinct_tokens(tokens: Sequence[NamedToken]) -> None:
    """Refuse two tokens with one name or one secret (whose role would then win?)."""
    names = [t.name for t in tokens]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"token names must be unique; repeated: {', '.join(repeated)}")
    seen: dict[str, str] = {}
    for token in tokens:
        if token.token in seen:
            raise ValueError(f"tokens {seen[token.token]!r} and {token.name!r} are the same secret")
        seen[token.token] = token.name


class ServiceSettings(Section):
    """What every service's settings have: where it keeps data, listens and logs."""

    data_dir: Path
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
