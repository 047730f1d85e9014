"""Start, watch and stop the demo's services as real processes.

Each service runs as ``python -m appliance.cli.main <kind> run --config ...`` in its own
session, logging to a file in its folder. Start-up waits (bounded) for every /healthz to
answer 200, one service after the other except those planned to come up in the
background (the hotel), which are awaited last; a service that exits or stays unhealthy
stops the whole demo with the tail of its log. The manifest records what runs where, so
``--stop`` and tests can find it.

Exceptions::

    DemoError      a service failed to start or become healthy (message names it)
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from appliance.demo.plan import LOOPBACK, ServicePlan, directory, plan_services
from drivers.daemon.private_files import write_private

MANIFEST = "manifest.json"
MARKER = "appliance.cli.main"


class DemoError(Exception):
    """The demo could not be brought up."""


def start(demo_dir: Path, timeout: float = 60.0, public_ip: str = LOOPBACK) -> dict[str, Any]:
    """Bring the demo up (stopping an earlier one first); returns the manifest.

    ``public_ip`` (an IPv4 address of this machine) is where phones reach SIP and RTP.
    """
    check_public_ip(public_ip)
    demo_dir = demo_dir.resolve()
    demo_dir.mkdir(parents=True, exist_ok=True)
    stop(demo_dir)
    plans = plan_services(demo_dir, public_ip)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for plan in plans:
            procs[plan.name] = _spawn(plan)
            if not plan.background:
                _wait_healthy(plan, procs[plan.name], time.monotonic() + timeout)
        for plan in (p for p in plans if p.background):
            _wait_healthy(plan, procs[plan.name], time.monotonic() + timeout)
        _publish_directory(plans, time.monotonic() + timeout)
    except BaseException:
        # Whatever stops the start (a DemoError, a bad file, Ctrl-C), nothing started stays.
        _terminate(list(procs.values()))
        raise
    manifest = _manifest(demo_dir, plans, procs)
    write_private(demo_dir / MANIFEST, json.dumps(manifest, indent=2))
    return manifest


def check_public_ip(address: str) -> None:
    """DemoError unless ``address`` is an IPv4 address this machine can listen on."""
    try:
        if ipaddress.ip_address(address).version != 4:
            raise DemoError(f"--public-ip {address}: SIP and RTP need an IPv4 address")
    except ValueError:
        raise DemoError(f"--public-ip {address!r} is not an IPv4 address") from None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            raise DemoError(
                f"--public-ip {address} is not an address of this machine: "
                "pick one `ip -4 address` lists"
            ) from None


def _spawn(plan: ServicePlan) -> subprocess.Popen[bytes]:
    plan.root.mkdir(parents=True, exist_ok=True)
    plan.take_modems()
    if plan.ready_file is None:
        write_private(plan.config_path, yaml.safe_dump(plan.config, sort_keys=False))
    cmd = [sys.executable, "-m", MARKER, *plan.command()]
    with plan.log_path.open("ab") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_healthy(plan: ServicePlan, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"{plan.name} exited with code {proc.returncode}:\n{_tail(plan)}")
        if _ready(plan):
            return
        time.sleep(0.1)
    raise DemoError(f"{plan.name} did not become healthy in time:\n{_tail(plan)}")


def _ready(plan: ServicePlan) -> bool:
    if plan.ready_file is not None:
        # A simulator is ready once its file holds the whole JSON, not when it appears.
        try:
            json.loads(plan.ready_file.read_text())
        except (OSError, ValueError):
            return False
        return True
    try:
        return httpx.get(f"{plan.url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _publish_directory(plans: list[ServicePlan], deadline: float) -> None:
    """PUT the company directory at HQ and wait until every branch runs a routing table."""
    hq = next(p for p in plans if p.kind == "aggregator")
    headers = {"Authorization": f"Bearer {hq.extras['api_tokens'][0]['token']}"}
    try:
        answer = httpx.put(f"{hq.url}/api/v1/directory", json=directory(plans),
                           headers=headers, timeout=10)  # fmt: skip
    except httpx.HTTPError as err:
        raise DemoError(f"HQ did not take the directory: {err}") from err
    if answer.status_code != 200:
        raise DemoError(f"HQ refused the directory ({answer.status_code}): {answer.text}")
    branches = [p for p in plans if p.kind == "appliance" and "pbx" in p.config]
    while time.monotonic() < deadline:
        if all(_routing_version(p) > 0 for p in branches):
            return
        time.sleep(0.1)
    raise DemoError("the branches did not receive their routing tables from HQ in time")


def _routing_version(plan: ServicePlan) -> int:
    try:
        text = httpx.get(f"{plan.url}/metrics", timeout=1.0).text
    except httpx.HTTPError:
        return 0
    for line in text.splitlines():
        if line.startswith("callmesh_routing_version "):
            return int(float(line.split()[1]))
    return 0


def _tail(plan: ServicePlan, lines: int = 15) -> str:
    try:
        text = plan.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {plan.log_path})"
    return "\n".join(f"  | {line}" for line in text[-lines:])


def _manifest(
    demo_dir: Path, plans: list[ServicePlan], procs: dict[str, subprocess.Popen[bytes]]
) -> dict[str, Any]:
    services = {plan.name: _entry(plan, procs[plan.name].pid) for plan in plans}
    return {
        "format": 1,
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "demo_dir": str(demo_dir),
        "services": services,
    }


def _entry(plan: ServicePlan, pid: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": plan.kind, "pid": pid}
    if plan.ready_file is not None:
        ready = json.loads(plan.ready_file.read_text())
        entry |= {key: ready[key] for key in plan.published}
    else:
        entry |= {
            "http": plan.url,
            "healthz": f"{plan.url}/healthz",
            "metrics": f"{plan.url}/metrics",
            "config": str(plan.config_path),
        }
    return entry | {"data_dir": plan.config["data_dir"], "log": str(plan.log_path), **plan.extras}


def read_manifest(demo_dir: Path) -> dict[str, Any] | None:
    """The running demo's manifest, or None when there is none."""
    try:
        loaded: dict[str, Any] = json.loads((demo_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return loaded


def stop(demo_dir: Path, timeout: float = 20.0) -> list[str]:
    """Stop every service the manifest lists (newest first); returns the names stopped."""
    manifest = read_manifest(demo_dir.resolve())
    if manifest is None:
        return []
    stopped = []
    for name, service in reversed(list(manifest["services"].items())):
        if _is_ours(service["pid"]):
            _stop_pid(service["pid"], timeout)
            stopped.append(name)
    (demo_dir / MANIFEST).unlink(missing_ok=True)
    return stopped


def _is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return MARKER.encode() in cmdline


def _stop_pid(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _is_ours(pid):
        time.sleep(0.05)
    if _is_ours(pid):
        os.kill(pid, signal.SIGKILL)


def _terminate(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
