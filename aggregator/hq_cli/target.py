"""Where HQ is and which token to send: defaults < config file < environment < command line.

The config file (``--config``, else ``$CALLMESH_HQ_CONFIG``, else
``~/.config/callmesh/hq.yaml`` when it exists) holds ``url``, ``token`` or ``token_file``
and ``timeout_s``. ``$CALLMESH_HQ_URL`` and ``$CALLMESH_HQ_TOKEN`` override it; ``--url``
overrides them. The token is never taken from the command line, where other users of
the machine could read it.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aggregator.hq_cli.errors import EXIT_USAGE, HqCliError

DEFAULT_URL = "http://127.0.0.1:8800"
CONFIG_ENV = "CALLMESH_HQ_CONFIG"
URL_ENV = "CALLMESH_HQ_URL"
TOKEN_ENV = "CALLMESH_HQ_TOKEN"


@dataclass(frozen=True)
class HqTarget:
    """The HQ API to talk to, with its token."""

    url: str
    token: str
    timeout_s: float


class HqFile(BaseModel):
    """The config file's keys; every key is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(None, pattern=r"^https?://")
    token: str | None = Field(None, min_length=1)
    token_file: Path | None = None
    timeout_s: float = Field(30.0, gt=0, le=3600)


def resolve(url: str | None, config: Path | None, env: Mapping[str, str], home: Path) -> HqTarget:
    """Merge the sources once; refuse a missing token or a bad file with a clear error."""
    path = config or _env_path(env) or _default_path(home)
    found = _read(path) if path is not None else HqFile()
    token = env.get(TOKEN_ENV) or found.token or _token_from(found.token_file, path)
    if not token:
        raise HqCliError(
            "no-token",
            "no HQ API token",
            EXIT_USAGE,
            hint=f"set ${TOKEN_ENV} or put token: in {path or _home_file(home)}",
        )
    target = url or env.get(URL_ENV) or found.url or DEFAULT_URL
    if not target.startswith(("http://", "https://")):
        raise HqCliError("bad-url", f"{target!r} is not an http:// or https:// URL", EXIT_USAGE)
    return HqTarget(target.rstrip("/"), token.strip(), found.timeout_s)


def _env_path(env: Mapping[str, str]) -> Path | None:
    value = env.get(CONFIG_ENV)
    return Path(value) if value else None


def _home_file(home: Path) -> Path:
    return home / ".config" / "callmesh" / "hq.yaml"


def _default_path(home: Path) -> Path | None:
    path = _home_file(home)
    return path if path.is_file() else None


def _read(path: Path) -> HqFile:
    try:
        raw: Any = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise HqCliError("config-unreadable", f"{path}: {err.strerror}", EXIT_USAGE) from None
    except yaml.YAMLError as err:
        raise HqCliError("config-invalid", f"{path}: not YAML ({err})", EXIT_USAGE) from None
    if not isinstance(raw, dict):
        raise HqCliError("config-invalid", f"{path}: expected a mapping of keys", EXIT_USAGE)
    try:
        found = HqFile.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = f"{path}: {where}: {first['msg']} (keys: url, token, token_file, timeout_s)"
        raise HqCliError("config-invalid", message, EXIT_USAGE) from None
    if found.token is not None:
        _refuse_open_file(path)
    return found


def _token_from(token_file: Path | None, config: Path | None) -> str | None:
    if token_file is None:
        return None
    path = token_file if token_file.is_absolute() or config is None else config.parent / token_file
    try:
        text = path.read_text()
    except OSError as err:
        raise HqCliError("token-file-unreadable", f"{path}: {err.strerror}", EXIT_USAGE) from None
    _refuse_open_file(path)
    return text.strip() or None


def _refuse_open_file(path: Path) -> None:
    """A file holding a token must not be readable by other users (as ssh does for keys)."""
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HqCliError(
            "secret-file-too-open",
            f"{path} holds a token and other users may read it",
            EXIT_USAGE,
            hint=f"chmod 600 {path}",
        )
