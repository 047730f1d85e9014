"""Enrol this box with HQ: make (or reuse) the site keypair, present the code, save HQ's answer.

Steps, each safe to repeat: the keypair in ``data_dir/keys`` is created once and reused
(the secret never leaves the box); HQ is asked with the code and the public key,
retrying while it is unreachable; HQ's answer is written to ``conf.d/50-enrolment.yaml``
(mode 0640) in one rename. Run as root, the key files take the owner of the data
directory and the drop-in the owner of the config file, so the service user reads them.

Running it again with the same code and key gets the same answer from HQ, so an
enrolment cut short is finished by running the command again.

Exceptions::

    EnrolError    enrolment failed; ``error_id`` says why, the message what to do
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from drivers.daemon.config_layers import ConfigError, collect_layers, merge_layers
from drivers.sync import keys

DROP_IN = "50-enrolment.yaml"
SITE_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


class EnrolError(Exception):
    """Enrolment failed; the message says what to do next."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message


@dataclass(frozen=True)
class Target:
    """Where the enrolment is written: the drop-in and the key files, and whose they are."""

    drop_in: Path
    key_dir: Path
    config: Path


@dataclass(frozen=True)
class Enrolled:
    """What HQ answered, as written to the drop-in."""

    site_id: str
    endpoint: str
    server_public_key: str
    key_file: Path
    drop_in: Path


def site_of(code: str) -> str:
    """The site id a code names (``SITE_ID.SECRET``)."""
    site_id, dot, secret = code.strip().rpartition(".")
    if not dot or not site_id or not secret or not set(site_id) <= SITE_ID_CHARS:
        raise EnrolError("code-malformed", "an enrolment code reads SITE_ID.SECRET; check it")
    return site_id


def check_url(url: str, allow_http: bool) -> str:
    """HQ's base URL; plain http only to loopback unless ``allow_http``."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise EnrolError("hq-url", f"{url!r} is not an http(s) URL such as https://hq.example")
    if parts.scheme == "http" and not allow_http and not _loopback(parts.hostname):
        raise EnrolError(
            "hq-url-insecure",
            "the code would cross the network unencrypted; use https:// (or --allow-http)",
        )
    return url.rstrip("/")


def target_of(config: Path, conf_d: Path | None) -> Target:
    """The drop-in path and key folder for the appliance configured by ``config``."""
    try:
        merged, _ = merge_layers(collect_layers(config, conf_d))
    except ConfigError as err:
        raise EnrolError("config-unreadable", str(err)) from None
    data_dir = merged.get("data_dir")
    if not isinstance(data_dir, str):
        raise EnrolError("config-no-data-dir", f"{config} sets no data_dir")
    return Target((conf_d or config.parent / "conf.d") / DROP_IN, Path(data_dir) / "keys", config)


def site_keypair(target: Target, site_id: str) -> tuple[Path, str]:
    """The site's secret key file and z85 public key, created on the first run only."""
    key_dir = target.key_dir
    secret = key_dir / f"{site_id}.key_secret"
    if not secret.exists():
        try:
            made = keys.generate(key_dir, site_id)
            for path in (key_dir, *made):
                _same_owner(path, key_dir.parent)
        except OSError as err:
            raise EnrolError("key-write-failed", f"cannot write keys in {key_dir}: {err}") from None
    try:
        public, _ = keys.load_secret(secret)
    except keys.KeyFileError as err:
        raise EnrolError("key-unusable", f"{err}; move it away to make a new one") from None
    return secret, public.decode()


def http_client(ca_file: Path | None) -> httpx.Client:
    """An HTTP client verifying HQ against ``ca_file`` (or the system CAs)."""
    try:
        verify = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as err:
        raise EnrolError("hq-tls", f"cannot use CA file {ca_file}: {err}") from None
    return httpx.Client(timeout=10.0, verify=verify)


def ask_hq(
    post: Callable[[str, dict[str, str]], httpx.Response],
    url: str,
    code: str,
    public_key: str,
    retry_for_s: float,
) -> dict[str, Any]:
    """HQ's answer to the enrolment, retrying connection failures for ``retry_for_s``."""
    deadline = time.monotonic() + retry_for_s
    pause = 1.0
    while True:
        try:
            response = post(f"{url}/api/v1/enrol", {"code": code, "public_key": public_key})
        except httpx.ConnectError as err:
            if "CERTIFICATE" in str(err).upper() or "SSL" in str(err).upper():
                raise EnrolError("hq-tls", f"TLS with {url} failed: {err}") from None
            if time.monotonic() + pause > deadline:
                raise EnrolError("hq-unreachable", f"cannot reach {url}: {err}") from None
        except httpx.TimeoutException:
            if time.monotonic() + pause > deadline:
                raise EnrolError("hq-unreachable", f"{url} did not answer in time") from None
        except httpx.HTTPError as err:
            raise EnrolError("hq-request-failed", f"request to {url} failed: {err}") from None
        else:
            return _answer(response)
        time.sleep(pause)
        pause = min(pause * 2, 10.0)


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise EnrolError(
            "hq-bad-answer", f"HQ answered HTTP {response.status_code} without a JSON object"
        )
    if response.status_code != 200:
        error_id = str(body.get("error_id", f"http-{response.status_code}"))
        raise EnrolError(error_id, f"HQ refused: {body.get('message', response.reason_phrase)}")
    return body


def _same_owner(path: Path, like: Path) -> None:
    """Give ``path`` the owner and group of ``like`` when running as root."""
    if os.geteuid() == 0:
        owner = like.stat()
        os.chown(path, owner.st_uid, owner.st_gid)


def save(target: Target, secret: Path, answer: dict[str, Any]) -> Enrolled:
    """Write HQ's answer as the drop-in (0640, atomically)."""
    try:
        server_key = keys.check_z85_key(str(answer["server_public_key"])).decode()
        endpoints = [str(e) for e in answer["endpoints"]]
        site_id = str(answer["site_id"])
    except (KeyError, TypeError, ValueError) as err:
        raise EnrolError("hq-bad-answer", f"HQ's answer is incomplete: {err}") from None
    if not endpoints:
        raise EnrolError(
            "hq-no-endpoint", "HQ gave no ingest endpoint; ask HQ to set enrolment.endpoints"
        )
    enrolled = Enrolled(site_id, endpoints[0], server_key, secret, target.drop_in)
    _write_drop_in(target.drop_in, _drop_in(enrolled), target.config)
    return enrolled


def _drop_in(enrolled: Enrolled) -> dict[str, Any]:
    return {
        "site_id": enrolled.site_id,
        "sync": {
            "enabled": True,
            "endpoint": enrolled.endpoint,
            "server_public_key": enrolled.server_public_key,
            "key_file": str(enrolled.key_file),
        },
    }


def _write_drop_in(path: Path, data: dict[str, Any], config: Path) -> None:
    text = "# Written by `callmesh enrol`; run it again rather than editing.\n"
    text += yaml.safe_dump(data, sort_keys=False)
    partial = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(partial, 0o640)
        _same_owner(partial, config)
        os.replace(partial, path)
    except OSError as err:
        raise EnrolError("config-write-failed", f"cannot write {path}: {err}") from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
