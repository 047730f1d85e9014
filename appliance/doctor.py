"""Checks a field technician runs on a box: software, system tools, config, store, network.

Each check yields a Finding: ok, warn or fail, what was found and, unless ok, what to do
next. Any fail makes the doctor exit 1. The self-test of a running appliance (HQ link, SIP
edge, modems, SIMs, ...) is in ``appliance.doctor_live``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import httpx

    from appliance.settings import ApplianceSettings
    from drivers.net.plan import Desired

PY_PACKAGES = (
    ("pjsua2", "pjsua2-python", "media workers"),
    ("lmdb", "lmdb", "store"),
    ("zmq", "pyzmq", "sync link"),
    ("msgpack", "msgpack", "sync link"),
    ("serial", "pyserial", "modems"),
    ("pyroute2", "pyroute2", "network set-up"),
    ("scapy", "scapy", "recordings"),
    ("fastapi", "fastapi", "HTTP API"),
    ("sqlalchemy", "SQLAlchemy", "aggregator store"),
)
SYSTEM_TOOLS = (
    ("kamailio", "SIP edge"),
    ("rtpengine", "media relay and recording"),
    ("sipp", "SIP load and tests"),
    ("tshark", "packet capture"),
)


API_TIMEOUT_S = 8.0

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    """The outcome of one check; ``next_step`` says what to do unless it is ok."""

    group: str
    check: str
    status: Status
    detail: str
    next_step: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ok(group: str, check: str, detail: str) -> Finding:
    """A passed check."""
    return Finding(group, check, "ok", detail)


def warn(group: str, check: str, detail: str, next_step: str) -> Finding:
    """A check that did not fail but needs attention."""
    return Finding(group, check, "warn", detail, next_step)


def fail(group: str, check: str, detail: str, next_step: str) -> Finding:
    """A failed check and what to do about it."""
    return Finding(group, check, "fail", detail, next_step)


@dataclass(frozen=True)
class Appliance:
    """The running appliance as the doctor reaches it: settings and its local API."""

    settings: ApplianceSettings
    api: httpx.AsyncClient

    async def get(self, path: str) -> Any:
        """The JSON answer of a GET; raises httpx errors."""
        response = await self.api.get(path, timeout=API_TIMEOUT_S)
        response.raise_for_status()
        return response.json()


def _local(check: str, ok: bool, detail: str, next_step: str, required: bool = True) -> Finding:
    status: Status = "ok" if ok else ("fail" if required else "warn")
    return Finding("software", check, status, detail, "" if ok else next_step)


def run_checks(config: Path | None = None) -> list[Finding]:
    """Every check, in a stable order."""
    findings = [_python()]
    findings.extend(_packages())
    findings.extend(_tools())
    if config is not None:
        findings.extend(_config(config))
    return findings


def _python() -> Finding:
    ok = sys.version_info >= (3, 11)
    detail = f"{sys.version.split()[0]} (3.11 or newer needed)"
    return _local("python", ok, detail, "install Python 3.11 or newer (Debian 12 has it)")


def _packages() -> Iterator[Finding]:
    for module, dist, purpose in PY_PACKAGES:
        try:
            importlib.import_module(module)
            version = importlib.metadata.version(dist)
            yield _local(f"package {dist}", True, f"{version} ({purpose})", "")
        except (ImportError, importlib.metadata.PackageNotFoundError, OSError) as err:
            detail = f"cannot import {module}: {err} ({purpose})"
            yield _local(f"package {dist}", False, detail, "reinstall the callmesh package")


def _tools() -> Iterator[Finding]:
    for tool, purpose in SYSTEM_TOOLS:
        path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
        detail = path or f"not installed (needed for {purpose})"
        step = f"install the {tool} Debian package"
        yield _local(f"tool {tool}", path is not None, detail, step, required=False)


def _config(path: Path) -> Iterator[Finding]:
    from appliance.settings import ApplianceSettings
    from drivers.daemon.config_layers import ConfigError, collect_layers, load_settings

    try:
        settings = load_settings(ApplianceSettings, collect_layers(path))
    except ConfigError as err:
        detail = "; ".join(str(p) for p in err.problems)
        yield Finding("config", "config", "fail", detail, "fix the named keys in the config")
        return
    detail = f"{path}: site {settings.site_id}, profile {settings.profile}"
    yield Finding("config", "config", "ok", detail)
    yield _data_dir(settings.data_dir)
    if settings.network.manage:
        yield network_finding(settings.network.desired())


def network_finding(desired: Desired, netns: str | None = None) -> Finding:
    """Whether the network matches the config; the pending changes if it does not."""
    from drivers.net import NetError
    from drivers.net.netlink import NetlinkDriver
    from drivers.net.plan import changes, plan, problems

    driver = NetlinkDriver(netns)
    try:
        actions = plan(desired, driver.read(), driver.supports)
    except (NetError, OSError) as err:
        return Finding("network", "network", "fail", f"cannot read the network: {err}", _NET)
    todo = [a.describe() for a in changes(actions)]
    issues = [f"{a.target}: {a.op} {a.args.get('kind', '')}".strip() for a in problems(actions)]
    if not todo and not issues:
        return Finding("network", "network", "ok", "matches the config")
    detail = "; ".join([*issues, *(f"pending: {t}" for t in todo)])
    return Finding("network", "network", "fail", detail, _NET)


_NET = "start (or restart) the appliance to apply the network config; check cables and VPN keys"


def _data_dir(path: Path) -> Finding:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.is_dir() and os.access(probe, os.W_OK):
        return Finding("config", "data directory", "ok", f"{path} writable")
    detail = f"{path}: {probe} is not a writable directory"
    return Finding("config", "data directory", "fail", detail, "create it, owned by callmesh")
