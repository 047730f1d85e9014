"""A small observed deployment: HQ, a SIM gateway on simulated modems syncing to it, and a
branch with the PBX (Kamailio, rtpengine). Scrapes, promtool and sipp helpers."""

from __future__ import annotations

import random
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from drivers.modem.simulator import ModemSimulator
from tests.integration.pbx.harness import (
    DOMAIN,
    EXTENSIONS,
    free_udp_tcp_port,
    password,
    sipp_media_port,
)
from tests.procs import ROOT, Service, free_port, write_yaml
from tests.sync_env import SyncEnv

SIPP_INVITE = ROOT / "tests" / "integration" / "sipp" / "invite_unknown_number.xml"
TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def require_tools() -> None:
    """Fail with what to install when promtool, Kamailio, rtpengine or sipp is missing."""
    missing = [b for b in ("promtool", "kamailio", "rtpengine", "sipp") if not shutil.which(b)]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: apt-get install prometheus kamailio "
            "kamailio-sqlite-modules kamailio-extra-modules rtpengine-daemon sip-tester "
            "(./run test does this)"
        )


def gateway_config(env: SyncEnv, simulator: ModemSimulator) -> None:
    """Turn the env's appliance into a SIM gateway driving the simulator's modems."""
    config = yaml.safe_load(env.app_config.read_text())
    config["profile"] = "sim-gateway"
    config["gateway"] = {
        "ready_timeout_s": 30,
        "modems": [
            {"channel": f"gsm-{m['index']}", "port": m["at_by_id"], "imei": m["imei"]}
            for m in simulator.info()
        ],
    }
    env.app_config.write_text(yaml.safe_dump(config))


@dataclass
class Branch:
    """A branch appliance with the PBX enabled, every port free on loopback."""

    root: Path
    http_port: int
    sip_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @classmethod
    def configure(cls, root: Path) -> Branch:
        branch = cls(root, free_port(), free_udp_tcp_port())
        rtp = random.randrange(30000, 59000, 200)
        write_yaml(root / "appliance.yaml", {
            "site_id": "branch-obs",
            "profile": "branch",
            "data_dir": str(root / "data"),
            "http": {"host": "127.0.0.1", "port": branch.http_port},
            "sip": {"domain": DOMAIN, "extensions": [
                {"number": n, "password": password(n), "name": name}
                for n, name in EXTENSIONS.items()
            ]},
            "pbx": {
                "enabled": True, "sip_port": branch.sip_port,
                "evapi_port": free_udp_tcp_port(), "rtpengine_ng_port": free_udp_tcp_port(),
                "route_port": free_udp_tcp_port(), "rtp_port_min": rtp,
                "rtp_port_max": rtp + 199, "kamailio_children": 2, "rtpengine_threads": 1,
                "no_answer_s": 3, "media": {"workers": 0},
            },
        })  # fmt: skip
        return branch

    def start(self) -> Service:
        args = ["appliance", "run", "-c", str(self.root / "appliance.yaml")]
        svc = Service(args, self.root / "appliance.log")
        svc.wait_healthy(f"{self.url}/healthz", timeout=60)
        return svc

    def daemon_pid(self, name: str) -> int:
        return int((self.root / "data" / "pbx" / "run" / f"{name}.pid").read_text())


def stop(svc: Service) -> None:
    """SIGTERM, so the appliance stops its daemons, then reap."""
    if svc.proc.poll() is None:
        svc.signal(signal.SIGTERM, timeout=30)
    svc.close()


def scrape(url: str) -> str:
    """The text of ``url``/metrics."""
    response = httpx.get(f"{url}/metrics", timeout=10)
    response.raise_for_status()
    return response.text


def sample(text: str, name_and_labels: str) -> float | None:
    """The value of the series written exactly ``name_and_labels`` in a scrape."""
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series == name_and_labels:
            return float(value)
    return None


def family_names(text: str) -> set[str]:
    """Every name a query may use: each family's name and its histogram series."""
    names: set[str] = set()
    for line in text.splitlines():
        match = TYPE_LINE.match(line)
        if match is None:
            continue
        name, kind = match.groups()
        names.add(name)
        if kind == "histogram":
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool with a timeout; output is returned, not checked."""
    return subprocess.run(
        ["promtool", *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def sipp_unknown_number(
    branch: Branch, number: str, root: Path
) -> subprocess.CompletedProcess[bytes]:
    """One authenticated INVITE from extension 1001 to ``number``, unknown to the dial plan."""
    out = root / f"sipp-{number}.log"
    return subprocess.run(
        ["sipp", "-sf", str(SIPP_INVITE), "-s", number, "-i", "127.0.0.1", "-nostdin",
         "-timeout", "20s", "-m", "1", "-p", str(free_udp_tcp_port()),
         "-mp", str(sipp_media_port()), "-trace_msg", "-message_file", str(out),
         f"127.0.0.1:{branch.sip_port}"],
        capture_output=True, timeout=40, check=False, cwd=root,
    )  # fmt: skip
