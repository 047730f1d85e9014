"""Postings and wake-up outcomes of a hotel appliance reach HQ exactly once.

Real processes: the appliance (profile hotel, PMS link to the simulator, no PBX) and the
aggregator, over the CurveZMQ sync link. Postings the PMS answered while HQ was down wait in
the appliance's ``hotel`` outbox; a wake-up outcome is put there as the wake-up service
writes it. After delivery the same entries are queued again, as after a lost ack: HQ
acknowledges them and still holds each record once.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from appliance.hotel.reports import OUTBOX
from appliance.store import Outbox, Store
from drivers.fias.simulator.core import PmsCore
from drivers.fias.simulator.server import PmsSimulator
from drivers.sync.hotel import WakeUpOutcome, pack_hotel_record
from tests.integration.test_sync import start_aggregator, start_appliance
from tests.sync_env import SyncEnv, make_env, wait_for

LOCAL_TOKEN = "local-admin-token-0123456789"
WAKE_UP = WakeUpOutcome(
    id="wake-5e1b", room="101", date="261207", time="063000", due_at=1_796_625_000.0,
    result="NR", attempts=3, front_desk_alerted=True, ended_at=1_796_625_790.0,
)  # fmt: skip


@pytest.fixture
def simulator() -> Iterator[PmsSimulator]:
    sim = PmsSimulator(PmsCore(rooms={"101": [], "0330": []}))
    sim.start()
    sim.act(lambda core: core.check_in("101", "Guest, Mr."))
    yield sim
    sim.stop()


@pytest.fixture
def env(tmp_path: Path, simulator: PmsSimulator) -> SyncEnv:
    made = make_env(tmp_path)
    config = yaml.safe_load(made.app_config.read_text())
    config["profile"] = "hotel"
    config["hotel"] = {"pms": {"port": simulator.port, "reconnect_min_s": 0.2,
                               "reconnect_max_s": 1}}  # fmt: skip
    config["api"] = {"tokens": [{"name": "desk", "token": LOCAL_TOKEN, "role": "admin"}]}
    made.app_config.write_text(yaml.safe_dump(config))
    return made


def local(env: SyncEnv, method: str, path: str, **body: Any) -> Any:
    headers = {"Authorization": f"Bearer {LOCAL_TOKEN}"}
    response = httpx.request(method, f"{env.app_url}/api/v1{path}", headers=headers,
                             json=body or None, timeout=10)  # fmt: skip
    response.raise_for_status()
    return response.json()


def pending(env: SyncEnv) -> int:
    text = httpx.get(f"{env.app_url}/metrics", timeout=5).text
    match = re.search(r'callmesh_outbox_pending\{outbox="hotel"\} ([0-9.e+]+)', text)
    assert match, "no hotel outbox metric"
    return int(float(match.group(1)))


def outbox(env: SyncEnv) -> Iterator[Outbox]:
    store = Store.open(env.root / "app" / "store")
    try:
        yield Outbox(store, OUTBOX)
    finally:
        store.close()


def hq(env: SyncEnv, path: str, key: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = env.api(f"/api/v1{path}", site=env.site_id)[key]
    return rows


def test_postings_and_wake_up_outcomes_reach_hq_once_even_when_sent_again(
    env: SyncEnv, simulator: PmsSimulator
) -> None:
    app = start_appliance(env)
    wait_for(lambda: local(env, "GET", "/hotel/pms")["state"] == "active", 30, "the PMS link")
    days = {local(env, "GET", "/hotel/pms")["business_date"]}
    local(env, "POST", "/hotel/postings", room="101", posting_type="C",
          fields={"TA": "1050", "DD": "0301234567", "DU": "000345"})  # fmt: skip
    local(env, "POST", "/hotel/postings", room="0330", posting_type="M",
          fields={"MA": "12", "M#": "2"})  # fmt: skip
    wait_for(lambda: pending(env) == 2, 30, "both answered postings in the hotel outbox")
    days.add(local(env, "GET", "/hotel/pms")["business_date"])
    assert app.signal(signal.SIGTERM) == 0
    for box in outbox(env):
        entries = [raw for _, raw in box.read_batch()]
        box.append(pack_hotel_record(WAKE_UP))
    sent = [*entries, pack_hotel_record(WAKE_UP)]

    agg = start_aggregator(env)
    app = start_appliance(env, "app2.log")
    try:
        wait_for(lambda: pending(env) == 0, 60, "the hotel outbox acknowledged")
        postings = hq(env, "/hotel/postings", "postings")
        assert sorted((p["room"], p["posting_type"], p["answer"]) for p in postings) == [
            ("0330", "M", "NG"), ("101", "C", "OK")
        ]  # fmt: skip
        booked = next(p for p in postings if p["room"] == "101")
        assert booked["business_date"] in days, "no night audit seen: the site's date"
        assert (booked["amount"], booked["duration_s"], booked["dialled"]) == (
            1050, 225, "0301234567"
        )  # fmt: skip
        [wake_up] = hq(env, "/hotel/wakeups", "wake_ups")
        assert (wake_up["result"], wake_up["attempts"], wake_up["front_desk_alerted"]) == (
            "NR", 3, True
        )  # fmt: skip

        assert app.signal(signal.SIGTERM) == 0
        for box in outbox(env):
            box.append_many(sent)
        app = start_appliance(env, "app3.log")
        wait_for(lambda: pending(env) == 0, 60, "the repeated entries acknowledged")
        assert len(hq(env, "/hotel/postings", "postings")) == 2
        assert len(hq(env, "/hotel/wakeups", "wake_ups")) == 1
        now = time.time()
        today, tomorrow = (time.strftime("%Y-%m-%d", time.gmtime(t)) for t in (now, now + 86400))
        span = {"from": today, "to": tomorrow}
        report = env.api("/api/v1/reports/hotel", None, **span)["rows"]
        [booked_today] = [r for r in report if r["postings"] or r["postings_refused"]]
        assert (booked_today["postings"], booked_today["amount"]) == (1, 1050)
        assert booked_today["postings_refused"] == 1
    finally:
        assert app.signal(signal.SIGTERM) == 0
        assert agg.signal(signal.SIGTERM) == 0
