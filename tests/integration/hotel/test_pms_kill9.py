"""kill -9 of the appliance mid-posting, then a restart: every posting booked exactly once.

The PMS simulator runs as ``callmesh pms-simulator`` and the appliance as ``callmesh appliance
run``, both real processes; postings enter through the local API.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.procs import ROOT, Service, free_port, write_yaml

TOKEN = "hotel-operator-token-0001"
VIEWER = "hotel-viewer-token-00001"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[tuple[int, str]]:
    info = tmp_path / "pms.json"
    log = (tmp_path / "pms.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli.main", "pms-simulator", "--rooms", "101-104",
         "--json", str(info)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        wait_for(lambda: info.exists() and info.stat().st_size > 0, "simulator started")
        ports = json.loads(info.read_text())
        yield ports["fias_port"], ports["control"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


def wait_for(check: Callable[[], Any], what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"not within {within}s: {what}")


def appliance_config(tmp_path: Path, http_port: int, fias_port: int) -> Path:
    return write_yaml(
        tmp_path / "appliance.yaml",
        {
            "site_id": "hotel-1",
            "profile": "hotel",
            "data_dir": str(tmp_path / "data"),
            "http": {"host": "127.0.0.1", "port": http_port},
            "api": {
                "tokens": [
                    {"name": "desk", "token": TOKEN, "role": "operator"},
                    {"name": "screen", "token": VIEWER, "role": "viewer"},
                ]
            },
            "hotel": {"pms": {"port": fias_port, "reconnect_min_s": 0.2, "reconnect_max_s": 1}},
        },
    )


def pms_state(control: str) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{control}/state", timeout=5).json()
    return document


def control_post(control: str, path: str, body: dict[str, Any] | None = None) -> None:
    httpx.post(f"{control}/{path}", json=body or {}, timeout=5).raise_for_status()


def post_charge(base: str, room: str, cents: int) -> int:
    body = {"room": room, "posting_type": "C", "fields": {"TA": str(cents)}}
    response = httpx.post(f"{base}/api/v1/hotel/postings", json=body, headers=HEADERS, timeout=5)
    response.raise_for_status()
    number: int = response.json()["posting_number"]
    return number


def check_api_errors(base: str) -> None:
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    body = {"room": "101", "posting_type": "C", "fields": {"TA": "1"}}
    url = f"{base}/api/v1/hotel/postings"
    denied = httpx.post(url, json=body, headers=viewer, timeout=5)
    assert (denied.status_code, denied.json()["error_id"]) == (403, "role-forbidden")
    bad = {**body, "fields": {"TA|": "1"}}
    refused = httpx.post(url, json=bad, headers=HEADERS, timeout=5)
    assert (refused.status_code, refused.json()["error_id"]) == (422, "bad-field")
    wait_for(
        lambda: (
            httpx.get(f"{base}/api/v1/hotel/pms", headers=viewer, timeout=5).json()["state"]
            == "active"
        ),
        "the appliance sees the link active (viewers may read the status)",
    )


def received_postings(control: str) -> list[str]:
    return [r for r in pms_state(control)["received"] if r.startswith("PS|")]


def test_postings_are_booked_exactly_once_across_kill_9_mid_posting(
    tmp_path: Path, simulator: tuple[int, str]
) -> None:
    fias_port, control = simulator
    for room in ("101", "102"):
        control_post(control, f"rooms/{room}/check-in", {"name": f"Guest {room}"})
    control_post(control, "answers", {"mode": "never"})
    http_port = free_port()
    base = f"http://127.0.0.1:{http_port}"
    config = appliance_config(tmp_path, http_port, fias_port)
    first = Service(["appliance", "run", "-c", str(config)], tmp_path / "appliance-1.log")
    try:
        first.wait_healthy(f"{base}/healthz")
        wait_for(lambda: pms_state(control)["link_active"], "link up")
        check_api_errors(base)
        numbers = [post_charge(base, ("101", "102")[n % 2], 1000 + n) for n in range(4)]
        wait_for(lambda: received_postings(control), "first PS on the wire")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
    finally:
        first.close()
    assert len(received_postings(control)) == 1, "one posting outstanding at a time"
    control_post(control, "answers", {"mode": "normal"})
    second = Service(["appliance", "run", "-c", str(config)], tmp_path / "appliance-2.log")
    try:
        second.wait_healthy(f"{base}/healthz")
        numbers.append(post_charge(base, "101", 2000))
        wait_for(lambda: len(pms_state(control)["postings"]) == 5, "every posting booked")
        status = httpx.get(f"{base}/api/v1/hotel/pms", headers=HEADERS, timeout=5).json()
        wait_for(
            lambda: httpx.get(f"{base}/api/v1/hotel/pms", headers=HEADERS, timeout=5).json()[
                "postings_pending"
            ] == 0,
            "every answer processed",
        )  # fmt: skip
    finally:
        second.close()
    final = pms_state(control)
    assert numbers == [1, 2, 3, 4, 5]
    assert [p["number"] for p in final["postings"]] == numbers
    assert [p["record"].split("|TA")[1].split("|")[0] for p in final["postings"]] == [
        "1000", "1001", "1002", "1003", "2000",
    ]  # fmt: skip
    assert final["repeats"] == 1, "the posting in flight at kill -9 came again with its P#"
    assert final["overlaps"] == 0
    assert status["state"] == "active"
