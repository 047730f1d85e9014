"""`callmesh modem ...` against simulated modems: output, exit codes and one-line errors."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.cli import modem_cmd
from drivers.modem.serialio import SerialLink

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[3]


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callmesh")
    sub = parser.add_subparsers(dest="command", required=True)
    modem_cmd.add_parser(sub)
    args = parser.parse_args(["modem", *argv])
    result: int = args.func(args)
    return result


@pytest.fixture
def sim(make_sim: Any) -> Any:
    return make_sim(count=2)


def test_every_command_explains_itself_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--help"],
        ["scan", "--help"],
        ["probe", "--help"],
        ["at", "--help"],
        ["sms", "--help"],
        ["sms", "send", "--help"],
        ["dial", "--help"],
        ["simulate", "--help"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(*argv)
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "usage:" in text
        assert len(text.splitlines()) > 3, argv
    assert run_cli() == 2


def test_scan_lists_every_simulated_modem_as_json(
    sim: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pattern = f"{sim.directory}/by-id/*-if02-port0"
    assert run_cli("scan", "--ports", pattern, "--json") == 0
    found = json.loads(capsys.readouterr().out)
    assert sorted(r["identity"]["imei"] for r in found) == sorted(m["imei"] for m in sim.info())
    assert all(r["network"]["registered"] for r in found)


def test_scan_text_output(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("scan", "--ports", sim.info()[0]["at"]) == 0
    out = capsys.readouterr().out
    assert "Quectel EC25" in out
    assert "SIM READY" in out
    assert "registered LTE callmesh-net" in out


def test_probe_json(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    info = sim.info()[1]
    assert run_cli("probe", info["at_by_id"], "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sim"]["imsi"] == info["sims"][0]["imsi"]
    assert result["profile"] == "quectel-ec25"


def test_no_such_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("probe", "/dev/callmesh-no-such-port") == 1
    assert capsys.readouterr().out == "error: no such port: /dev/callmesh-no-such-port\n"


def test_port_busy(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    port = sim.info()[0]["at"]
    holder = SerialLink.open(port)
    try:
        assert run_cli("probe", port) == 1
    finally:
        holder.close()
    assert capsys.readouterr().out == f"error: port busy: {port} is held by another process\n"


def test_not_a_modem(capsys: pytest.CaptureFixture[str]) -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        assert run_cli("probe", path) == 1
    finally:
        os.close(master)
        os.close(slave)
    assert capsys.readouterr().out == f"error: not a modem: {path} does not answer AT\n"


def test_sim_pin_locked(make_sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    locked = make_sim(pin="1234")
    port = locked.info()[0]["at"]
    assert run_cli("sms", "send", port, "+15551234567", "hi") == 1
    out = capsys.readouterr().out
    assert out.startswith("error: SIM PIN locked")
    assert out.count("\n") == 1


def test_no_network(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    sim.set_network(0, False)
    assert run_cli("dial", sim.info()[0]["at"], "+15551234567", "--seconds", "0.1") == 1
    out = capsys.readouterr().out
    assert out.startswith("error: no network: not registered (stat 0")
    assert out.count("\n") == 1


def test_raw_at_shows_answers_and_urcs(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    timer = threading.Timer(0.3, lambda: sim.incoming_call(0, "+4930555"))
    timer.start()
    try:
        assert run_cli("at", sim.info()[0]["at"], "AT+CSQ", "AT+CGMM", "--listen", "1.0") == 0
    finally:
        timer.cancel()
    out = capsys.readouterr().out
    assert "> AT+CSQ" in out
    assert "+CSQ: " in out
    assert "EC25" in out
    assert "URC RING" in out
    assert 'URC +CLIP: "+4930555"' in out


def test_raw_at_reports_failures(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("at", sim.info()[0]["at"], "AT+NOSUCH", "--listen", "0") == 1
    assert "ERROR" in capsys.readouterr().out


def test_sms_send(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("sms", "send", sim.info()[0]["at"], "+15557654321", "field test") == 0
    assert capsys.readouterr().out.startswith("sent 1 part(s)")
    assert sim.record(0).sent_sms == [("+15557654321", "field test")]


def test_dial_holds_the_call_then_hangs_up(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    sim.set_far_end(0, answer_after=0.1)
    assert run_cli("dial", sim.info()[0]["at"], "+15557654321", "--seconds", "0.3") == 0
    out = capsys.readouterr().out
    assert "call active" in out
    assert "call released (local hangup)" in out
    assert "call ended after" in out


def test_simulate_runs_until_sigterm_with_http_control(tmp_path: Path) -> None:
    ports = tmp_path / "ports.json"
    command = [
        sys.executable,
        "-m",
        "drivers.modem.simulator",
        "--count",
        "2",
        "--sims",
        "2",
        "--json",
        str(ports),
        "--dir",
        str(tmp_path / "sim"),
        "--boot-seconds",
        "0.05",
        "--reset-seconds",
        "0.5",
    ]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while not ports.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        document = json.loads(ports.read_text())
        assert len(document["modems"]) == 2
        assert Path(document["modems"][1]["at_by_id"]).exists()
        base = document["control"]
        with httpx.Client(base_url=base, timeout=5) as client:
            listed = client.get("/modems").json()["modems"]
            assert [m["index"] for m in listed] == [0, 1]
            assert len(listed[0]["sims"]) == 2
            assert client.post("/modems/0/call", json={"from": "+4930777"}).json()["ok"]
            detail = client.get("/modems/0").json()["result"]
            assert detail["calls"][0]["number"] == "+4930777"
            assert (
                client.post("/modems/0/sms", json={"from": "+49", "text": "x"}).status_code == 200
            )
            assert client.post("/modems/0/nosuch").status_code == 404
            bad = client.post("/modems/0/call", content=b"{not json")
            assert bad.status_code == 400
            assert bad.json()["error_id"] == "bad-json"
            missing = client.post("/modems/9/wedge")
            assert missing.json()["error_id"] == "bad-request"
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert "control: http://127.0.0.1:" in output
    assert not list((tmp_path / "sim" / "by-id").iterdir())
