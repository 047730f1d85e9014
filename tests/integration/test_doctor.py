"""`callmesh doctor` against a demo deployment started for this module: healthy, then a modem
unplugged, a SIM removed and HQ stopped, each a failure naming what and what to do next."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from tests.procs import ROOT, callmesh, pid_alive

SCHEMA = json.loads(
    re.findall(r"```json\n(.*?)```", (ROOT / "docs" / "doctor.md").read_text(), re.S)[0]
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    path = tmp_path_factory.mktemp("doctor") / "demo"
    started = callmesh("demo", "--dir", str(path), "--timeout", "90", timeout=240)
    assert started.returncode == 0, started.stderr
    yield json.loads((path / "manifest.json").read_text())["services"]
    callmesh("demo", "--dir", str(path), "--stop", timeout=60)


def doctor(service: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    began = time.monotonic()
    result = callmesh("doctor", "--config", service["config"], "--json", timeout=90)
    assert time.monotonic() - began < 60
    report = json.loads(result.stdout)
    jsonschema.validate(report, SCHEMA)
    return result.returncode, report


def finding(report: dict[str, Any], check: str) -> dict[str, Any]:
    return next(f for f in report["findings"] if f["check"] == check)


def modem_control(demo: dict[str, Any], index: int, action: str, body: dict[str, Any]) -> None:
    url = f"{demo['modems']['control']}/modems/{index}/{action}"
    httpx.post(url, json=body, timeout=10).raise_for_status()


def wait_until_failed(demo: dict[str, Any], check: str, timeout: float = 40) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, report = doctor(demo["gateway"])
        found = finding(report, check)
        if found["status"] == "fail" or time.monotonic() > deadline:
            assert code == 1, report
            return found
        time.sleep(2)


@pytest.mark.timeout(600)
def test_doctor_reports_a_healthy_gateway_and_branch_all_green(demo: dict[str, Any]) -> None:
    for name in ("gateway", "branch"):
        code, report = doctor(demo[name])
        failed = [f for f in report["findings"] if f["status"] == "fail"]
        assert code == 0, failed
        assert report["status"] in ("ok", "warn")
        checks = {f["check"]: f for f in report["findings"]}
        assert checks["HQ link"]["status"] == "ok"
        assert checks["SIP edge"]["detail"].endswith("200 OK")
        assert checks["rtpengine"]["status"] == "ok"
        assert any(c.startswith("media worker ") for c in checks)
    code, report = doctor(demo["branch"])
    call = finding(report, "loopback call")
    assert call["status"] == "ok", call
    assert call["detail"].startswith("call to *43 as 1001: 75 RTP packets sent")
    code, report = doctor(demo["gateway"])
    modems = [f for f in report["findings"] if f["check"].startswith("modem gsm-")]
    assert [m["status"] for m in modems] == ["ok"] * 4
    assert "dBm" in modems[0]["detail"]
    sims = [f for f in report["findings"] if f["check"].startswith("SIM gsm-")]
    assert sims
    assert all(s["status"] == "ok" and "ICCID" in s["detail"] for s in sims)


@pytest.mark.timeout(600)
def test_doctor_names_an_unplugged_modem_and_what_to_do(demo: dict[str, Any]) -> None:
    modem_control(demo, 1, "unplug", {"replug_after": 120})
    found = wait_until_failed(demo, "modem gsm-2")
    assert found["status"] == "fail"
    assert "gsm-2" in found["next_step"]
    assert "USB cable" in found["next_step"]


@pytest.mark.timeout(600)
def test_doctor_names_a_removed_sim_and_what_to_do(demo: dict[str, Any]) -> None:
    modem_control(demo, 2, "sim", {"present": False})
    found = wait_until_failed(demo, "modem gsm-3")
    assert found["status"] == "fail"
    assert "NOT INSERTED" in found["detail"]
    assert found["next_step"].startswith("insert a SIM into gsm-3")
    _, report = doctor(demo["gateway"])
    sim = finding(report, "SIM gsm-3 slot 0")
    assert sim["status"] == "fail"
    assert sim["next_step"].startswith("insert SIM 89")


@pytest.mark.timeout(600)
def test_doctor_fails_register_and_call_with_a_wrong_password(
    demo: dict[str, Any], tmp_path: Path
) -> None:
    config = yaml.safe_load(Path(demo["branch"]["config"]).read_text())
    config["sip"]["extensions"][0]["password"] = "not-the-password"
    wrong = tmp_path / "appliance.yaml"
    wrong.write_text(yaml.safe_dump(config))
    code, report = doctor({"config": str(wrong)})
    assert code == 1
    for check in ("SIP edge", "loopback call"):
        found = finding(report, check)
        assert found["status"] == "fail"
        assert re.search(r"answered 40[17]$", found["detail"])
        assert "password was refused" in found["next_step"]


@pytest.mark.timeout(600)
def test_doctor_fails_the_hq_link_when_hq_is_stopped(demo: dict[str, Any]) -> None:
    os.kill(demo["aggregator"]["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while pid_alive(demo["aggregator"]["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    code, report = doctor(demo["branch"])
    assert code == 1
    hq = finding(report, "HQ link")
    assert hq["status"] == "fail"
    assert "HQ runs" in hq["next_step"]
