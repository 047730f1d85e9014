"""`callmesh demo --public-ip`: a phone on another machine registers and talks to the demo.

The Vagrant VM runs the demo with its private-network address (Vagrantfile); here namespace
``…-vm`` plays the VM (``eth1`` 10.79.0.1/24) and ``…-host`` the developer's machine at the
other end of the veth pair (10.79.0.2). A pjsua2 phone in ``…-host`` registers as branch A's
extension 1001 at the advertised address and calls the echo test (*43): hearing its own
tone back proves SIP and RTP both reach the address the demo advertises.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import NetNS, netns

from drivers.net.component import NetworkComponent
from drivers.net.netlink import NetlinkDriver
from drivers.net.plan import Desired, Link
from tests.integration.pbx.audio import dominant, loudness, read_channels
from tests.integration.pbx.harness import Phone, require_debs, wait_for
from tests.procs import ROOT, callmesh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

VM_IP, HOST_IP = "10.79.0.1", "10.79.0.2"
TONE = 450


@dataclass
class Demo:
    """The demo running in the VM namespace, and the namespace of the phone."""

    host_ns: str
    manifest: dict[str, Any]

    @property
    def branch(self) -> dict[str, Any]:
        branch: dict[str, Any] = self.manifest["services"]["branch"]
        return branch

    @property
    def sip_port(self) -> int:
        return int(self.branch["sip"]["address"].rsplit(":", 1)[1])


def build_network(vm: str, host: str) -> None:
    for name in (vm, host):
        netns.create(name)
    with NetNS(vm) as ipr:
        ipr.link("add", ifname="eth1", kind="veth", peer={"ifname": "eth0", "net_ns_fd": host})
    for name, ifname, address in ((vm, "eth1", VM_IP), (host, "eth0", HOST_IP)):
        desired = Desired(links=(Link("lo"), Link(ifname, addresses=(f"{address}/24",))))
        report = NetworkComponent(desired, NetlinkDriver(name)).converge()
        assert report.ok, report.problems


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    require_debs()
    root = tmp_path_factory.mktemp("demo-public-ip")
    prefix = f"cmv-{secrets.token_hex(3)}"
    vm, host = f"{prefix}-vm", f"{prefix}-host"
    demo_dir = root / "demo"
    try:
        build_network(vm, host)
        started = subprocess.run(
            ["ip", "netns", "exec", vm, sys.executable, "-m", "appliance.cli.main", "demo",
             "--dir", str(demo_dir), "--public-ip", VM_IP, "--timeout", "180"],
            capture_output=True, text=True, timeout=900, cwd=ROOT, check=False,
        )  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"branch SIP (UDP) for phones: {VM_IP}:" in started.stdout
        yield Demo(host, json.loads((demo_dir / "manifest.json").read_text()))
    finally:
        callmesh("demo", "--dir", str(demo_dir), "--stop", timeout=120)
        for name in (vm, host):
            with contextlib.suppress(OSError):
                netns.remove(name)


def test_every_site_advertises_the_public_address(demo: Demo) -> None:
    for name in ("branch", "branch-b", "gateway", "hotel"):
        assert demo.manifest["services"][name]["sip"]["address"].startswith(f"{VM_IP}:")
    assert demo.branch["http"].startswith("http://127.0.0.1:")


def test_a_phone_on_the_host_registers_and_hears_the_echo(demo: Demo, tmp_path: Path) -> None:
    extension = demo.branch["sip"]["extensions"][0]
    phone = Phone(demo, extension["number"], TONE, tmp_path, secret=extension["password"],
                  domain=demo.branch["sip"]["domain"], host=VM_IP, netns=demo.host_ns,
                  bind=HOST_IP)  # fmt: skip
    try:
        assert phone.registered(timeout=30) == 200
        phone.send("call", to="*43")
        phone.state("CONFIRMED", timeout=30)
        wait_for(lambda: phone.record.exists() and phone.record.stat().st_size > 40000, 30,
                 lambda: "the phone recorded nothing")  # fmt: skip
        phone.send("hangup")
        phone.state("DISCONNECTED", timeout=15)
    finally:
        phone.close()
    rate, channels = read_channels(phone.record)
    assert loudness(channels[0]) > 100, "the echo was silent"
    assert dominant(channels[0], rate, [300.0, TONE, 600.0, 1000.0]) == TONE


def test_an_address_the_machine_lacks_is_refused(tmp_path: Path) -> None:
    refused = callmesh("demo", "--dir", str(tmp_path / "d"), "--public-ip", "192.0.2.99")
    assert refused.returncode == 1
    assert "--public-ip 192.0.2.99 is not an address of this machine" in refused.stderr
    assert not (tmp_path / "d" / "manifest.json").exists()
