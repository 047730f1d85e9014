"""`callmesh demo` brings up three healthy real services and describes them in a manifest."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from tests.integration.pbx.harness import Phone, connect_call
from tests.procs import callmesh, pid_alive


@pytest.fixture
def demo_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "demo"
    yield path
    callmesh("demo", "--dir", str(path), "--stop")


def wait_gone(pids: list[int], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_demo_starts_three_healthy_services_and_stops_them(demo_dir: Path) -> None:
    result = callmesh("demo", "--dir", str(demo_dir), timeout=120)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((demo_dir / "manifest.json").read_text())
    services = manifest["services"]
    assert list(services) == ["aggregator", "branch", "branch-b", "modems", "gateway"]
    assert services["branch"]["profile"] == services["branch-b"]["profile"] == "branch"
    assert services["gateway"]["profile"] == "sim-gateway"
    assert len(services["modems"]["modems"]) == 4
    assert services["modems"]["control"].startswith("http://127.0.0.1:")
    appliances = {k: v for k, v in services.items() if k != "modems"}
    for svc in appliances.values():
        assert svc["http"].startswith("http://127.0.0.1:")
        assert httpx.get(svc["healthz"], timeout=5).json()["status"] == "ok"
        assert Path(svc["data_dir"]).is_dir()
        assert svc["api_tokens"][0]["role"] == "admin"
        assert pid_alive(svc["pid"])
    gateway = httpx.get(services["gateway"]["healthz"], timeout=5).json()
    assert gateway["checks"]["modems"] == {"ok": True, "detail": "4/4 modems ready"}
    token = services["aggregator"]["api_tokens"][0]["token"]
    sites = httpx.get(
        f"{services['aggregator']['http']}/api/v1/sites",
        timeout=5,
        headers={"Authorization": f"Bearer {token}"},
    ).json()["sites"]
    assert {s["site_id"] for s in sites} == {"demo-branch", "demo-branch-b", "demo-gateway"}
    extensions = services["branch"]["sip"]["extensions"]
    assert [e["number"] for e in extensions] == ["1001", "1002", "1003"]
    assert "manifest.json" in result.stdout

    stopped = callmesh("demo", "--dir", str(demo_dir), "--stop")
    assert stopped.returncode == 0
    assert stopped.stdout.strip() == "stopped: gateway, modems, branch-b, branch, aggregator"
    assert wait_gone([svc["pid"] for svc in services.values()])
    assert not (demo_dir / "manifest.json").exists()


def test_demo_restart_replaces_the_old_services_and_keeps_credentials(demo_dir: Path) -> None:
    assert callmesh("demo", "--dir", str(demo_dir), timeout=120).returncode == 0
    first = json.loads((demo_dir / "manifest.json").read_text())["services"]
    assert callmesh("demo", "--dir", str(demo_dir), timeout=120).returncode == 0
    second = json.loads((demo_dir / "manifest.json").read_text())["services"]
    assert wait_gone([svc["pid"] for svc in first.values()])
    assert second["branch"]["sip"] == first["branch"]["sip"]
    assert all(pid_alive(svc["pid"]) for svc in second.values())


def test_demo_status_without_a_demo_says_so(tmp_path: Path) -> None:
    result = callmesh("demo", "--dir", str(tmp_path / "none"), "--status")
    assert result.returncode == 1
    assert "no demo running" in result.stderr


def test_a_call_at_the_demo_branch_reaches_hq_as_a_cdr(demo_dir: Path) -> None:
    assert callmesh("demo", "--dir", str(demo_dir), timeout=120).returncode == 0
    services = json.loads((demo_dir / "manifest.json").read_text())["services"]
    branch, hq = services["branch"], services["aggregator"]
    port = branch["sip"]["address"].rsplit(":", 1)[1]
    edge = SimpleNamespace(sip_port=int(port))
    creds = {e["number"]: e["password"] for e in branch["sip"]["extensions"]}
    alice = Phone(edge, "1001", 1000, demo_dir, creds["1001"], branch["sip"]["domain"])  # type: ignore[arg-type]
    bob = Phone(edge, "1002", 600, demo_dir, creds["1002"], branch["sip"]["domain"])  # type: ignore[arg-type]
    try:
        assert alice.registered() == 200
        assert bob.registered() == 200
        connect_call(alice, bob)
        time.sleep(1.0)
        alice.send("hangup")
        bob.state("DISCONNECTED")
    finally:
        alice.close()
        bob.close()
    headers = {"Authorization": f"Bearer {hq['api_tokens'][0]['token']}"}

    def answered_at_hq() -> bool:
        found = httpx.get(
            f"{hq['http']}/api/v1/cdrs", params={"site": "demo-branch"}, headers=headers, timeout=5
        ).json()["cdrs"]
        return any(
            c["disposition"] == "answered" and c["caller_extension"] == "1001" for c in found
        )

    deadline = time.monotonic() + 30
    while not answered_at_hq():
        assert time.monotonic() < deadline, "the call's CDR did not reach HQ"
        time.sleep(0.2)


def test_a_branch_extension_calls_the_other_branch_by_its_company_number(demo_dir: Path) -> None:
    assert callmesh("demo", "--dir", str(demo_dir), timeout=120).returncode == 0
    services = json.loads((demo_dir / "manifest.json").read_text())["services"]
    phones = []
    for name, number, tone in (("branch", "1001", 1000), ("branch-b", "3001", 600)):
        sip = services[name]["sip"]
        edge = SimpleNamespace(sip_port=int(sip["address"].rsplit(":", 1)[1]))
        password = {e["number"]: e["password"] for e in sip["extensions"]}[number]
        phones.append(Phone(edge, number, tone, demo_dir, password, sip["domain"]))
    reception, desk = phones
    try:
        assert reception.registered() == 200
        assert desk.registered() == 200
        reception.send("call", to="3001")
        incoming = desk.wait(lambda e: e["ev"] == "incoming")
        assert incoming["remote"].startswith('"Reception (Branch A)"')
        desk.send("answer")
        reception.state("CONFIRMED")
        reception.send("hangup")
        desk.state("DISCONNECTED")
    finally:
        reception.close()
        desk.close()


def test_branch_a_breaks_out_through_the_gateways_gsm_channels(demo_dir: Path) -> None:
    assert callmesh("demo", "--dir", str(demo_dir), timeout=120).returncode == 0
    services = json.loads((demo_dir / "manifest.json").read_text())["services"]
    sip, hq, gateway = services["branch"]["sip"], services["aggregator"], services["gateway"]
    gw_auth = {"Authorization": f"Bearer {gateway['api_tokens'][0]['token']}"}

    def a_channel_is_up() -> bool:
        answer = httpx.get(f"{gateway['http']}/api/v1/gsm/channels", headers=gw_auth, timeout=5)
        channels = answer.json()["channels"] if answer.status_code == 200 else []
        return any(c["registered"] and c["worker_alive"] for c in channels)

    deadline = time.monotonic() + 30
    while not a_channel_is_up():
        assert time.monotonic() < deadline, "no GSM channel of the gateway came up"
        time.sleep(0.2)
    edge = SimpleNamespace(sip_port=int(sip["address"].rsplit(":", 1)[1]))
    password = {e["number"]: e["password"] for e in sip["extensions"]}["1001"]
    reception = Phone(edge, "1001", 1000, demo_dir, password, sip["domain"])  # type: ignore[arg-type]
    try:
        assert reception.registered() == 200
        reception.send("call", to="0301234567")
        reception.state("CONFIRMED", timeout=20)
        time.sleep(1.0)
        reception.send("hangup")
        reception.state("DISCONNECTED")
    finally:
        reception.close()
    headers = {"Authorization": f"Bearer {hq['api_tokens'][0]['token']}"}

    def legs() -> dict[str, dict[str, Any]]:
        found = httpx.get(f"{hq['http']}/api/v1/cdrs", params={"number": "0301234567"},
                          headers=headers, timeout=5).json()["cdrs"]  # fmt: skip
        return {c["site_id"]: c for c in found if c["disposition"] == "answered"}

    deadline = time.monotonic() + 30
    while len(legs()) < 2:
        assert time.monotonic() < deadline, f"both sites' CDRs did not reach HQ: {legs()}"
        time.sleep(0.2)
    branch_leg, gateway_leg = legs()["demo-branch"], legs()["demo-gateway"]
    assert gateway_leg["trunk"].startswith("gsm-")
    assert gateway_leg["caller_extension"] == "1001"
    assert branch_leg["conversation_id"] == gateway_leg["conversation_id"]
    assert branch_leg["recording_id"]
    assert gateway_leg["recording_id"]
