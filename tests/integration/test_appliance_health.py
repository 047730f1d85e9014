"""An appliance that tells when it is sick: a crashed sync client is restarted and shown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from appliance.store import Store
from tests.integration.test_sync import start_aggregator
from tests.procs import Service
from tests.store_fill import fill, full
from tests.sync_env import TOKEN, SyncEnv, make_env, wait_for

APP_TOKEN = "appliance-viewer-token-0123"
MAP_MB = 16


@pytest.fixture
def env(tmp_path: Path) -> SyncEnv:
    env = make_env(tmp_path, reconnect_min_s=0.2, reconnect_max_s=1.0)
    config = yaml.safe_load(env.app_config.read_text())
    config.update(
        store={"map_size_mb": MAP_MB},
        api={"tokens": [{"name": "v", "token": APP_TOKEN, "role": "viewer"}]},
    )
    env.app_config.write_text(yaml.safe_dump(config))
    return env


def start_unhealthy_appliance(env: SyncEnv) -> Service:
    """An appliance whose /healthz answers, healthy or not."""
    svc = Service(["appliance", "run", "-c", str(env.app_config)], env.root / "app.log")
    wait_for(lambda: health(env) is not None, 30, "the appliance's /healthz")
    return svc


def health(env: SyncEnv) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = httpx.get(f"{env.app_url}/healthz", timeout=2).json()
    except httpx.HTTPError:
        return None
    return body


def check(env: SyncEnv, name: str) -> dict[str, Any]:
    body = health(env)
    assert body is not None
    found: dict[str, Any] = body["checks"][name]
    return found


def metric(env: SyncEnv, name: str) -> float:
    text = httpx.get(f"{env.app_url}/metrics", timeout=5).text
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"no {name} in /metrics"
    return float(match.group(1))


def company_dnc_version(env: SyncEnv) -> int:
    headers = {"Authorization": f"Bearer {APP_TOKEN}"}
    url = f"{env.app_url}/api/v1/compliance/dnc"
    return int(httpx.get(url, headers=headers, timeout=5).json()["company_version"])


def test_a_sync_client_crashed_by_a_full_store_is_shown_restarted_and_recovers(
    env: SyncEnv,
) -> None:
    agg = start_aggregator(env)
    app = start_unhealthy_appliance(env)
    outside = Store.open(env.root / "app" / "store", MAP_MB)
    try:
        wait_for(lambda: check(env, "sync")["detail"] == "up", 30, "the sync session")
        assert metric(env, "callmesh_sync_restarts_total") == 0
        with full(outside):
            put = httpx.put(
                f"{env.agg_url}/api/v1/fleet/dnc/+4930999",
                json={"reason": "complaint"},
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            )
            assert put.status_code == 200
            wait_for(lambda: not check(env, "sync")["ok"], 30, "a failing sync check")
            assert "StoreFullError" in check(env, "sync")["detail"]
            assert metric(env, "callmesh_sync_restarts_total") >= 1
            assert "Traceback" in app.output()
            assert "sync client failed; restarting it" in app.output()
        wait_for(lambda: company_dnc_version(env) == 1, 30, "the DNC list applied after restart")
        wait_for(lambda: check(env, "sync")["ok"], 30, "the sync check passing again")
        assert check(env, "sync")["detail"].startswith("up; restarted")
    finally:
        outside.close()
        app.close()
        agg.close()


def test_the_store_alarm_is_raised_at_the_high_water_mark_while_cdrs_still_flow_to_hq(
    env: SyncEnv,
) -> None:
    outside = Store.open(env.root / "app" / "store", MAP_MB)
    fill(outside, budget=int(0.85 * MAP_MB * 1024 * 1024))
    outside.close()
    env.prefill(20)
    agg = start_aggregator(env)
    app = start_unhealthy_appliance(env)
    try:
        store = check(env, "store")
        assert not store["ok"]
        assert store["detail"].startswith("store-high-water: 8")
        assert "(alarm at 80%)" in store["detail"]
        assert metric(env, "callmesh_store_alarm") == 1
        wait_for(lambda: env.ingested() == 20, 30, "the CDRs at HQ")
        assert env.pending() == 0

        def site() -> dict[str, Any]:
            found: dict[str, Any] = env.api("/api/v1/sites")["sites"][0]
            return found

        wait_for(lambda: site()["alarms"] == ["store-high-water"], 30, "the alarm at HQ")
        assert 80 <= site()["store_used_percent"] < 100
    finally:
        app.close()
        agg.close()
