"""The doctor's verdicts: a finding per modem and SIM naming the channel and the next step,
the report document and exit codes, and the loopback call's audio helpers."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from appliance.cli.doctor_cmd import print_human, report
from appliance.cli.main import main
from appliance.doctor import Finding
from appliance.doctor_gsm import modem_finding, sim_finding
from drivers.sip.echo_probe import TONE, all_values, audible, media_address, ulaw
from drivers.sip.register_probe import Account, authorization, challenge, status_code
from tests.procs import ROOT

AT = 1_800_000_000.0
SCHEMA = json.loads(
    re.findall(r"```json\n(.*?)```", (ROOT / "docs" / "doctor.md").read_text(), re.S)[0]
)


def modem(**overrides: Any) -> dict[str, Any]:
    healthy = {
        "channel": "gsm-1", "port": "/dev/serial/by-id/x-if02", "imei": "1", "slot": 0,
        "state": "ready",
        "at": True, "pin_state": "READY", "iccid": "8901", "registered": True,
        "operator": "Test", "signal_dbm": -71, "voice_port": "/dev/serial/by-id/x-if01",
        "error": None,
    }  # fmt: skip
    return {**healthy, **overrides}


def test_a_healthy_modem_is_ok_with_its_signal_and_voice_port() -> None:
    found = modem_finding(modem())
    assert (found.check, found.status, found.next_step) == ("modem gsm-1", "ok", "")
    assert "-71 dBm" in found.detail


@pytest.mark.parametrize(
    ("overrides", "detail", "step"),
    [
        ({"state": "recovering", "at": False}, "driver recovering", "USB cable"),
        ({"pin_state": "NOT INSERTED"}, "SIM NOT INSERTED", "insert a SIM into gsm-1"),
        ({"pin_state": "SIM PIN"}, "SIM SIM PIN", "gateway.modems[].pin for gsm-1"),
        ({"registered": False}, "not registered", "antenna"),
        ({"voice_port": None}, "no voice port", "udev"),
    ],
)
def test_a_broken_modem_fails_naming_its_channel_and_the_next_step(
    overrides: dict[str, Any], detail: str, step: str
) -> None:
    found = modem_finding(modem(**overrides))
    assert found.status == "fail"
    assert detail in found.detail
    assert step in found.next_step


def test_weak_signal_is_a_warning() -> None:
    assert modem_finding(modem(signal_dbm=-111)).status == "warn"


def test_a_sim_that_reached_a_limit_warns_with_the_reason() -> None:
    sim = {"channel": "gsm-2", "slot": 1, "iccid": "8901", "status": "stopped", "reason": "daily"}
    found = sim_finding(sim)
    assert (found.check, found.status) == ("SIM gsm-2 slot 1", "warn")
    assert "daily" in found.detail
    assert sim_finding({**sim, "status": "standby"}).status == "ok"


def test_a_sim_missing_from_its_selected_slot_fails_naming_channel_slot_and_iccid() -> None:
    sim = {"channel": "gsm-1", "slot": 0, "iccid": "8901", "status": "standby", "reason": ""}
    found = sim_finding(sim, modem(pin_state="NOT INSERTED", iccid=None))
    assert (found.check, found.status) == ("SIM gsm-1 slot 0", "fail")
    assert found.next_step == "insert SIM 8901 into gsm-1 slot 0 (or reseat it)"
    assert sim_finding({**sim, "slot": 1}, modem(pin_state="NOT INSERTED")).status == "ok"


def test_report_is_valid_and_its_status_is_the_worst_finding() -> None:
    findings = [
        Finding("system", "disk", "ok", "fine"),
        Finding("hq", "HQ link", "warn", "session down", "wait"),
    ]
    document = report(findings, AT)
    jsonschema.validate(document, SCHEMA)
    assert (document["status"], document["counts"]) == ("warn", {"ok": 1, "warn": 1, "fail": 0})
    failed = report([*findings, Finding("sip", "rtpengine", "fail", "no pong", "restart")], AT)
    assert failed["status"] == "fail"


def test_human_output_groups_findings_and_gives_next_steps_without_colour(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_human([Finding("gsm", "modem gsm-1", "fail", "AT does not answer", "replug")], False)
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "gsm"
    assert "[FAIL] modem gsm-1" in out
    assert "next: replug" in out
    assert "\033[" not in out


def test_doctor_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["doctor", "--no-such-flag"])
    assert exited.value.code == 2


def test_tone_is_audible_and_silence_is_not() -> None:
    assert ulaw(0) == 0xFF
    assert audible(TONE)
    assert not audible(bytes([ulaw(3)]) * 160)


def test_sip_answer_parsing() -> None:
    answer = (
        b"SIP/2.0 200 OK\r\nRecord-Route: <sip:127.0.0.1;lr>, <sip:10.0.0.1;lr>\r\n"
        b'WWW-Authenticate: Digest realm="callmesh.local", nonce="abc", qop="auth"\r\n'
        b"\r\nv=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 30002 RTP/AVP 0\r\n"
    )
    assert status_code(answer) == 200
    assert all_values(answer, "record-route") == ["<sip:127.0.0.1;lr>", "<sip:10.0.0.1;lr>"]
    assert media_address(answer) == ("127.0.0.1", 30002)
    assert challenge(answer) == {"realm": "callmesh.local", "nonce": "abc", "qop": "auth"}


def test_digest_answer_matches_the_rfc_2069_example() -> None:
    account = Account("Mufasa", "CircleOfLife", "testrealm@host.com", "127.0.0.1", 5060)
    params = {"realm": "testrealm@host.com", "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093"}
    value = authorization(account, "GET", "/dir/index.html", params)
    assert value.startswith('Digest username="Mufasa", realm="testrealm@host.com"')
    assert 'response="1949323746fe6a43ef61f9606e7febea"' in value
