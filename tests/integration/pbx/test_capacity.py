"""Load shedding at the edge: past ``pbx.max_calls`` a new call gets 503 with Retry-After,
the admitted calls complete, and every call attempt has exactly one CDR."""

from __future__ import annotations

import collections
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pbx.harness import (
    HERE,
    Pbx,
    free_udp_tcp_port,
    no_daemons_left,
    password,
    require_debs,
    sipp_media_port,
    wait_for,
)

MAX_CALLS = 10
RETRY_AFTER_S = 7
ATTEMPTS = 30
HOLD_MS = 6000
SCENARIOS = HERE / "sipp"


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[Pbx]:
    require_debs()
    root = tmp_path / "pbx"
    root.mkdir()
    instance = Pbx(root, max_calls=MAX_CALLS, retry_after_s=RETRY_AFTER_S,
                   pike_exempt=["127.0.0.1"], kamailio_children=4)  # fmt: skip
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(root)


def _sipp(pbx: Pbx, *args: str) -> list[str]:
    return ["sipp", f"127.0.0.1:{pbx.sip_port}", "-i", "127.0.0.1", "-nostdin",
            "-p", str(free_udp_tcp_port()), "-cp", str(free_udp_tcp_port()),
            "-mp", str(sipp_media_port()), *args]  # fmt: skip


def _callee(pbx: Pbx, root: Path) -> subprocess.Popen[bytes]:
    """A sipp UAS registered as 1002, answering every call."""
    port = free_udp_tcp_port()
    uas = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "capacity_uas.xml"), "-i", "127.0.0.1",
         "-p", str(port), "-mp", str(sipp_media_port()), "-cp", str(free_udp_tcp_port()),
         "-nostdin", "-max_socket", "512"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    register = subprocess.run(
        _sipp(pbx, "-sf", str(SCENARIOS / "capacity_register.xml"), "-m", "1",
              "-au", "1002", "-ap", password("1002"), "-key", "contact", f"127.0.0.1:{port}",
              "-timeout", "10s"),
        cwd=root, capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert register.returncode == 0, register.stdout[-2000:]
    return uas


def _burst(pbx: Pbx, root: Path, calls: int) -> dict[str, list[str]]:
    """``calls`` authenticated calls at once from 1001 to 1002; the call ids by outcome."""
    log = root / f"burst-{calls}.log"
    done = subprocess.run(
        _sipp(pbx, "-sf", str(SCENARIOS / "capacity_uac.xml"), "-m", str(calls),
              "-l", str(calls), "-r", str(calls), "-d", str(HOLD_MS),
              "-au", "1001", "-ap", password("1001"), "-trace_logs", "-log_file", str(log),
              "-timeout", "40s", "-max_socket", "512"),
        cwd=root, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout[-3000:]!r}\n{pbx.output()}"
    outcomes: dict[str, list[str]] = collections.defaultdict(list)
    for line in log.read_text().splitlines():
        words = line.split()
        if words and words[0] in ("admitted", "shed"):
            outcomes[words[0]].append(words[1])
            if words[0] == "shed":
                outcomes["retry_after"].append(words[2])
    return outcomes


def test_calls_past_max_calls_get_503_with_retry_after_and_every_call_one_cdr(
    capped: Pbx, tmp_path: Path
) -> None:
    uas = _callee(capped, tmp_path)
    try:
        outcomes = _burst(capped, tmp_path, ATTEMPTS)
        assert len(outcomes["admitted"]) == MAX_CALLS
        assert len(outcomes["shed"]) == ATTEMPTS - MAX_CALLS
        assert outcomes["retry_after"] == [str(RETRY_AFTER_S)] * (ATTEMPTS - MAX_CALLS)
        # The count and the new dialog were taken under a real lock, not a failed one.
        kamailio_log = (capped.data / "pbx" / "run" / "kamailio.log").read_text(errors="replace")
        assert "lock set not initialized" not in kamailio_log
        wait_for(lambda: len(capped.cdrs()) >= ATTEMPTS, 30, capped.output)
        assert capped.api("GET", "/calls")[1] == {"calls": []}
        # The slots come back: the next burst below the cap is admitted whole.
        again = _burst(capped, tmp_path, MAX_CALLS // 2)
        assert len(again["admitted"]) == MAX_CALLS // 2
        assert again["shed"] == []
        wait_for(lambda: len(capped.cdrs()) >= ATTEMPTS + MAX_CALLS // 2, 30, capped.output)
    finally:
        uas.kill()
        uas.wait(timeout=10)
    cdrs = collections.defaultdict(list)
    for cdr in capped.cdrs():
        cdrs[cdr["call_id"]].append(cdr)
    admitted = outcomes["admitted"] + again["admitted"]
    assert sorted(cdrs) == sorted(admitted + outcomes["shed"])
    for call_id in admitted:
        [cdr] = cdrs[call_id]
        assert cdr["disposition"] == "answered"
        assert cdr["hangup_cause"] == {"sip_code": 200, "reason": "normal-clearing"}
    for call_id in outcomes["shed"]:
        [cdr] = cdrs[call_id]
        assert cdr["disposition"] == "failed"
        assert cdr["hangup_cause"] == {"sip_code": 503, "reason": "over-capacity"}
