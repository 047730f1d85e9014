"""`callmesh provision` run inside a network namespace the test creates.

Topology (names unique per run): namespace ``…-box`` holds ``lan0`` (the appliance's LAN),
the veth peer ``hq0`` sits in ``…-hq`` at 192.0.2.1/24. Provision runs in ``…-box``
through ``ip netns exec`` with simulated modems on ptys, writes its config and networkd
files under a temp dir and ends with the doctor's report. The voice VLAN and the
WireGuard tunnel to HQ (a datagram sent across it) run when the kernel has 8021q and
wireguard, and are skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pyroute2 import NetNS, WireGuard, netns

from drivers.modem.simulator import ModemSimulator, SimulatorConfig
from drivers.net import wgkeys
from drivers.net.component import NetworkComponent
from drivers.net.netlink import NetlinkDriver
from drivers.net.plan import Desired, Link
from tests.integration.routing.sites import NsProcess, inside, wait_until
from tests.procs import ROOT, write_yaml

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

BOX_IP, HQ_IP = "192.0.2.10", "192.0.2.1"
WG_BOX, WG_HQ, WG_PORT = "10.99.0.2", "10.99.0.1", 51820
API_PORT, TOKEN = 8080, "provision-test-admin-token-0123"
SITE = {"id": "gw-hamburg", "name": "Hamburg gateway", "timezone": "Europe/Berlin",
        "region": "eu-central"}  # fmt: skip


@dataclass
class Box:
    """The namespaces, the temp tree provision writes to and the simulated modems."""

    ns: str
    hq: str
    root: Path
    simulator: ModemSimulator

    @property
    def config(self) -> Path:
        return self.root / "etc" / "appliance.yaml"

    @property
    def drop_in(self) -> Path:
        return self.root / "etc" / "conf.d" / "40-provision.yaml"

    @property
    def by_id(self) -> Path:
        return Path(str(self.simulator.info()[0]["at_by_id"])).parent

    @property
    def networkd(self) -> Path:
        return self.root / "networkd"

    def answers(self, **network: Any) -> Path:
        csv = self.root / "extensions.csv"
        csv.write_text("number,name,password\n2001,Gateway desk,\n2002,Night desk,night-desk-pw\n")
        data = {"site": SITE, "extensions_csv": str(csv),
                "network": {"lan": {"name": "lan0", "addresses": [f"{BOX_IP}/24"]}, **network},
                "modems": {"ports": [str(self.by_id / "*-if02-port0")]}}  # fmt: skip
        return write_yaml(self.root / "answers.yaml", data)

    def provision(self, answers: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        """Run provision in the box; ``--online`` (ours) lets the doctor reach the service."""
        doctor = [] if "--online" in extra else ["--offline"]
        flags = [flag for flag in extra if flag != "--online"]
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "appliance.cli.main",
             "provision", "--answers", str(answers), "--config", str(self.config),
             "--networkd-dir", str(self.networkd), "--no-input", *doctor, *flags],
            capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
        )  # fmt: skip


def build_network(box: str, hq: str) -> None:
    for name in (box, hq):
        netns.create(name)
    with NetNS(box) as ipr:
        ipr.link("add", ifname="lan0", kind="veth", peer={"ifname": "hq0", "net_ns_fd": hq})
    hq_side = Desired(links=(Link("lo"), Link("hq0", addresses=(f"{HQ_IP}/24",))))
    for name, desired in ((box, Desired(links=(Link("lo"),))), (hq, hq_side)):
        report = NetworkComponent(desired, NetlinkDriver(name)).converge()
        assert report.ok, report.problems


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    root = tmp_path_factory.mktemp("provision")
    prefix = f"cmp-{secrets.token_hex(3)}"
    names = (f"{prefix}-box", f"{prefix}-hq")
    config = SimulatorConfig(profile="quectel-ec25", count=2, sims=2,
                             directory=str(root / "modems"))  # fmt: skip
    base = {"site_id": "unset", "profile": "sim-gateway", "data_dir": str(root / "data"),
            "http": {"host": "127.0.0.1", "port": API_PORT},
            "api": {"tokens": [{"name": "tech", "token": TOKEN, "role": "admin"}]}}  # fmt: skip
    write_yaml(root / "etc" / "appliance.yaml", base)
    try:
        build_network(*names)
        with ModemSimulator(config) as simulator:
            simulator.wait_booted(30)
            yield Box(names[0], names[1], root, simulator)
    finally:
        for name in names:
            with contextlib.suppress(OSError):
                netns.remove(name)


def addresses(ns: str, ifname: str) -> set[str]:
    with NetNS(ns) as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return set()
        return {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                for a in ipr.get_addr(index=found[0], family=socket.AF_INET)}  # fmt: skip


def test_provision_sets_up_the_site_and_ends_with_a_healthy_doctor_report(box: Box) -> None:
    done = box.provision(box.answers())
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "site gw-hamburg (Hamburg gateway), Europe/Berlin, region eu-central" in out
    assert "extensions: 2001, 2002" in out
    for modem in box.simulator.info():
        sims: list[dict[str, Any]] = modem["sims"]  # type: ignore[assignment]
        sim = next(s for s in sims if s["present"])
        iccid = str(sim["iccid"]).rstrip("F")
        assert f"IMEI {modem['imei']}; SIM READY ICCID {iccid} number {sim['number']}" in out
    assert "[ok  ] config" in out
    assert "site gw-hamburg, profile sim-gateway" in out
    assert "[ok  ] network                  matches the config" in out
    assert addresses(box.ns, "lan0") == {f"{BOX_IP}/24"}
    written = yaml.safe_load(box.drop_in.read_text())
    assert [m["imei"] for m in written["gateway"]["modems"]] == sorted(
        (str(m["imei"]) for m in box.simulator.info()),
        key=lambda imei: next(str(m["at_by_id"]) for m in box.simulator.info()
                              if m["imei"] == imei))  # fmt: skip
    assert (
        (box.networkd / "10-callmesh-lan0.network").read_text().endswith(f"Address={BOX_IP}/24\n")
    )


def test_the_doctor_self_tests_the_running_appliance_and_its_modems(box: Box) -> None:
    assert box.provision(box.answers()).returncode == 0
    cli = [sys.executable, "-m", "appliance.cli.main", "appliance", "run"]
    service = NsProcess(box.ns, [*cli, "--config", str(box.config)], box.root / "service.log")
    service.start()
    try:
        wait_until(lambda: healthy(box.ns), 60, service.output)
        done = box.provision(box.answers(), "--online")
    finally:
        service.stop()
    assert done.returncode == 0, done.stdout + done.stderr + service.output()
    assert "nothing changed" in done.stdout
    assert "[ok  ] local API" in done.stdout
    for channel in ("gsm-1", "gsm-2"):
        assert f"[ok  ] modem {channel}" in done.stdout
        assert f"[ok  ] SIM {channel} slot" in done.stdout


def healthy(ns: str) -> bool:
    with inside(ns):
        return httpx.get(f"http://127.0.0.1:{API_PORT}/healthz", timeout=2).status_code == 200


def test_running_it_again_with_the_same_answers_changes_nothing(box: Box) -> None:
    box.provision(box.answers())
    before = {p: p.stat().st_mtime_ns for p in (box.drop_in, *box.networkd.iterdir())}
    again = box.provision(box.answers())
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing changed: the box already matches the answers" in again.stdout
    assert "network: matches config (0 changes applied)" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_a_bad_extension_row_is_named_and_nothing_is_applied(box: Box) -> None:
    box.provision(box.answers())
    before = box.drop_in.read_text()
    answers = box.answers(lan={"name": "lan0", "addresses": [f"{BOX_IP}/24", "198.51.100.7/24"]})
    (box.root / "extensions.csv").write_text("number,name,password\n2001,Desk,\n20x3,Bad,\n")
    done = box.provision(answers)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"callmesh provision: {box.root / 'extensions.csv'} line 3: number: an extension "
        "number is 2 to 8 digits [error_id: extension-invalid]")  # fmt: skip
    assert box.drop_in.read_text() == before
    assert addresses(box.ns, "lan0") == {f"{BOX_IP}/24"}


def test_a_voice_vlan_on_the_lan(box: Box) -> None:
    if not NetlinkDriver(box.ns).supports("vlan"):
        pytest.skip("this kernel has no 8021q module: VLANs cannot be created here")
    done = box.provision(box.answers(vlan={"id": 20, "name": "voice",
                                           "addresses": ["10.20.0.10/24"]}))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert addresses(box.ns, "voice") == {"10.20.0.10/24"}
    assert "VLAN=voice" in (box.networkd / "10-callmesh-lan0.network").read_text()
    assert "Id=20" in (box.networkd / "10-callmesh-voice.netdev").read_text()


def test_a_wireguard_tunnel_to_hq_carries_traffic(box: Box) -> None:
    if not NetlinkDriver(box.ns).supports("wireguard"):
        pytest.skip("this kernel has no wireguard module: the tunnel cannot be created here")
    box_key, hq_key = wgkeys.generate_private(), wgkeys.generate_private()
    hq_listens(box.hq, hq_key, wgkeys.public_of(box_key))
    tunnel = {"address": f"{WG_BOX}/32", "peer_public_key": wgkeys.public_of(hq_key),
              "endpoint": f"{HQ_IP}:{WG_PORT}", "allowed_ips": [f"{WG_HQ}/32"],
              "private_key": box_key, "keepalive_s": 1}  # fmt: skip
    done = box.provision(box.answers(wireguard=tunnel))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"PublicKey={wgkeys.public_of(hq_key)}" in (
        box.networkd / "10-callmesh-wg-hq.netdev").read_text()  # fmt: skip
    assert datagram_crosses(box.ns, box.hq, WG_HQ)


def hq_listens(ns: str, private_key: str, peer_public: str) -> None:
    """HQ's end of the tunnel: wg0 10.99.0.1/24 listening on WG_PORT."""
    with NetNS(ns) as ipr:
        ipr.link("add", ifname="wg0", kind="wireguard")
        index = ipr.link_lookup(ifname="wg0")[0]
        ipr.addr("add", index=index, address=WG_HQ, prefixlen=24)
        ipr.link("set", index=index, state="up")
    peer = {"public_key": peer_public, "allowed_ips": [f"{WG_BOX}/32"]}
    with inside(ns), contextlib.closing(WireGuard()) as wg:
        wg.set("wg0", private_key=private_key, listen_port=WG_PORT, peer=peer)


def datagram_crosses(box_ns: str, hq_ns: str, address: str, within: float = 20.0) -> bool:
    """A UDP datagram from the box reaches HQ's tunnel address (the handshake comes first)."""
    with inside(hq_ns):
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with server:
        server.bind((address, 0))
        server.settimeout(0.5)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with inside(box_ns), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.sendto(b"hello hq", server.getsockname())
            with contextlib.suppress(TimeoutError):
                if server.recv(64) == b"hello hq":
                    return True
    return False


def test_a_kernel_without_wireguard_is_reported_by_the_doctor(box: Box) -> None:
    if NetlinkDriver(box.ns).supports("wireguard"):
        pytest.skip("this kernel has wireguard: the tunnel test covers it")
    hq_key = wgkeys.public_of(wgkeys.generate_private())
    tunnel = {"address": f"{WG_BOX}/32", "peer_public_key": hq_key,
              "endpoint": f"{HQ_IP}:{WG_PORT}", "allowed_ips": [f"{WG_HQ}/32"]}  # fmt: skip
    done = box.provision(box.answers(wireguard=tunnel))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "wg-hq: wireguard unsupported by this kernel" in done.stdout
    assert "[FAIL] network" in done.stdout
    key = box.root / "etc" / "wireguard" / "wg-hq.key"
    public = wgkeys.public_of(key.read_text().strip())
    assert f"WireGuard public key of this box (give it to HQ): {public}" in done.stdout
    assert f"PrivateKeyFile={key}" in (box.networkd / "10-callmesh-wg-hq.netdev").read_text()
    box.provision(box.answers())
    assert not (box.networkd / "10-callmesh-wg-hq.netdev").exists()
