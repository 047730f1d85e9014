"""Checks a field technician runs on a box: software, system tools, config, store, network.

Each check yields a Finding; ``required`` findings that fail make the doctor exit 1.
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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


@dataclass(frozen=True)
class Finding:
    """The outcome of one check."""

    check: str
    ok: bool
    detail: str
    required: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    return Finding("python", ok, f"{sys.version.split()[0]} (3.11 or newer needed)")


def _packages() -> Iterator[Finding]:
    for module, dist, purpose in PY_PACKAGES:
        try:
            importlib.import_module(module)
            version = importlib.metadata.version(dist)
            yield Finding(f"package {dist}", True, f"{version} ({purpose})")
        except Exception as err:
            yield Finding(f"package {dist}", False, f"cannot import {module}: {err} ({purpose})")


def _tools() -> Iterator[Finding]:
    for tool, purpose in SYSTEM_TOOLS:
        path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
        detail = path or f"not installed (needed for {purpose})"
        yield Finding(f"tool {tool}", path is not None, detail, required=False)


def _config(path: Path) -> Iterator[Finding]:
    from appliance.settings import ApplianceSettings
    from drivers.runtime.config_layers import ConfigError, collect_layers, load_settings

    try:
        settings = load_settings(ApplianceSettings, collect_layers(path))
    except ConfigError as err:
        yield Finding("config", False, "; ".join(str(p) for p in err.problems))
        return
    yield Finding("config", True, f"{path}: site {settings.site_id}, profile {settings.profile}")
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
        return Finding("network", False, f"cannot read the network: {err}")
    todo = [a.describe() for a in changes(actions)]
    issues = [f"{a.target}: {a.op} {a.args.get('kind', '')}".strip() for a in problems(actions)]
    if not todo and not issues:
        return Finding("network", True, "matches the config")
    detail = "; ".join([*issues, *(f"pending: {t}" for t in todo)])
    return Finding("network", False, f"{detail} (start the appliance to apply)")


def _data_dir(path: Path) -> Finding:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    ok = probe.is_dir() and os.access(probe, os.W_OK)
    detail = f"{path} writable" if ok else f"{path}: {probe} is not a writable directory"
    return Finding("data directory", ok, detail)
