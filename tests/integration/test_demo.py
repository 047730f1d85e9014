"""`callmesh demo` brings up healthy real services and describes them in a manifest.

What users do with the running demo (calls, HQ's CDRs and WAVs) is the e2e tier's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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


def test_demo_starts_its_healthy_services_and_stops_them(demo_dir: Path) -> None:
    result = callmesh("demo", "--dir", str(demo_dir), timeout=120)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((demo_dir / "manifest.json").read_text())
    services = manifest["services"]
    assert list(services) == [
        "aggregator", "pms", "hotel", "branch", "branch-b", "modems", "gateway"
    ]  # fmt: skip
    assert services["branch"]["profile"] == services["branch-b"]["profile"] == "branch"
    assert services["gateway"]["profile"] == "sim-gateway"
    assert services["hotel"]["profile"] == "hotel"
    assert len(services["modems"]["modems"]) == 4
    assert services["modems"]["control"].startswith("http://127.0.0.1:")
    assert services["pms"]["control"].startswith("http://127.0.0.1:")
    appliances = {k: v for k, v in services.items() if k not in ("modems", "pms")}
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
    assert {s["site_id"] for s in sites} == {
        "demo-branch", "demo-branch-b", "demo-gateway", "demo-hotel"
    }  # fmt: skip
    extensions = services["branch"]["sip"]["extensions"]
    assert [e["number"] for e in extensions] == ["1001", "1002", "1003"]
    assert "manifest.json" in result.stdout

    stopped = callmesh("demo", "--dir", str(demo_dir), "--stop")
    assert stopped.returncode == 0
    assert stopped.stdout.strip() == (
        "stopped: gateway, modems, branch-b, branch, hotel, pms, aggregator"
    )
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
