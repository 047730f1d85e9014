"""kill -9 of Kamailio, rtpengine or the appliance mid-call: interrupted CDRs, valid WAVs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.integration.pbx.audio import dominant, read_channels
from tests.integration.pbx.harness import Pbx, connect_call, phones, wait_for

TONES = [300.0, 600.0, 1000.0, 1500.0]


def _assert_caller_tone_recorded(pbx: Pbx, cdr: dict[str, object]) -> dict[str, object]:
    assert isinstance(cdr["recording_id"], str)
    entry = pbx.recording(cdr["recording_id"], timeout=15)
    rate, (left, right) = read_channels(Path(str(entry["path"])))
    assert len(left) >= rate
    assert dominant(left, rate, TONES) == 1000.0
    assert dominant(right, rate, TONES) == 600.0
    return entry


def _one_interrupted(pbx: Pbx, why: str) -> dict[str, Any]:
    cdr = pbx.cdr_for(lambda c: c["disposition"] == "interrupted", timeout=15)
    assert cdr["hangup_cause"]["reason"] == why
    assert cdr["answer"] is not None
    ids = [c["cdr_id"] for c in pbx.cdrs()]
    assert len(ids) == len(set(ids)) == 1
    return cdr


def _restarted(pbx: Pbx, name: str, old_pid: int) -> None:
    def new_pid() -> bool:
        try:
            return pbx.daemon_pid(name) != old_pid
        except (OSError, ValueError, IndexError):
            return False

    wait_for(new_pid, 15, pbx.output)


def test_kamailio_kill9_mid_call_gives_interrupted_cdr(fresh_pbx: Pbx, tmp_path: Path) -> None:
    pbx = fresh_pbx
    with phones(pbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
        connect_call(alice, bob)
        time.sleep(2)
        old = pbx.daemon_pid("kamailio")
        os.kill(old, signal.SIGKILL)
        _restarted(pbx, "kamailio", old)
        cdr = _one_interrupted(pbx, "sip-proxy-restart")
        alice.send("hangup")
        alice.state("DISCONNECTED")
    _assert_caller_tone_recorded(pbx, cdr)


def test_rtpengine_kill9_mid_call_recovers_recording(fresh_pbx: Pbx, tmp_path: Path) -> None:
    pbx = fresh_pbx
    with phones(pbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
        connect_call(alice, bob)
        time.sleep(2.5)
        old = pbx.daemon_pid("rtpengine")
        os.kill(old, signal.SIGKILL)
        _restarted(pbx, "rtpengine", old)
        alice.send("hangup")
        bob.state("DISCONNECTED")
    cdr = _one_interrupted(pbx, "media-relay-restart")
    entry = _assert_caller_tone_recorded(pbx, cdr)
    assert entry["recovered"] is True


def test_appliance_kill9_mid_call_gives_interrupted_cdr_after_restart(
    fresh_pbx: Pbx, tmp_path: Path
) -> None:
    pbx = fresh_pbx
    with phones(pbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
        connect_call(alice, bob)
        time.sleep(2.5)
        pbx.kill9()
        pbx.start()
        cdr = _one_interrupted(pbx, "appliance-restart")
        alice.send("hangup")
    _assert_caller_tone_recorded(pbx, cdr)


def test_a_phone_that_vanishes_mid_call_is_hung_up_after_the_media_timeout(
    tmp_path: Path,
) -> None:
    pbx = Pbx(tmp_path, media_timeout_s=3)
    try:
        pbx.start()
        with phones(pbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
            connect_call(alice, bob)
            wait_for(lambda: any(c["answer"] for c in pbx.api("GET", "/calls")[1]["calls"]),
                     5, pbx.output)  # fmt: skip
            bob.proc.kill()
            alice.state("DISCONNECTED", timeout=15)
        cdr = _one_interrupted(pbx, "media-timeout")
        assert cdr["caller"]["number"] == "1001"
    finally:
        pbx.stop()
