"""SIM policy, fleet and compliance between a real aggregator and a SIM-gateway process."""

from __future__ import annotations

import datetime
import signal
import subprocess
import sys
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from drivers.sync import keys
from tests.integration.sim.gateway import ICCIDS
from tests.procs import ROOT, Service, free_port
from tests.sync_env import TOKEN, SyncEnv, make_env, wait_for

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
APP_TOKEN = "appliance-admin-token-0123"


def night() -> dict[str, Any]:
    """A calling window that is closed now (it opens in two hours)."""
    now = datetime.datetime.now(datetime.UTC)
    start, end = now + datetime.timedelta(hours=2), now + datetime.timedelta(hours=3)
    return {"start": f"{start:%H}:00", "end": f"{end:%H}:00"}


@pytest.fixture
def env(tmp_path: Path) -> SyncEnv:
    env = make_env(tmp_path)
    config = yaml.safe_load(env.app_config.read_text())
    config.update(
        profile="sim-gateway",
        api={"tokens": [{"name": "ops", "token": APP_TOKEN, "role": "operator"}]},
        site={"timezone": "Europe/Berlin"},
        sim={
            "strategy": "fixed-order",
            "status_interval_s": 1,
            "evaluate_interval_s": 0.2,
            "switch_cooldown_s": 0,
        },
        compliance={
            "max_attempts_per_day": 2,
            "campaigns": [{"id": "night", "windows": [night()], "timezone": "UTC"}],
        },
    )
    env.app_config.write_text(yaml.safe_dump(config))
    return env


def start_aggregator(env: SyncEnv) -> Service:
    svc = Service(["aggregator", "run", "-c", str(env.agg_config)], env.root / "agg.log")
    svc.wait_healthy(f"{env.agg_url}/healthz")
    return svc


class Gateway(Service):
    """The test gateway runs as its own module, not through the callmesh CLI."""

    def __init__(self, env: SyncEnv, log: str) -> None:
        self.log = env.root / log
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.sim.gateway", str(env.app_config)],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def start_gateway(env: SyncEnv, log: str = "app.log") -> Service:
    svc = Gateway(env, log)
    svc.wait_healthy(f"{env.app_url}/healthz")
    return svc


@pytest.fixture
def services(env: SyncEnv) -> Iterator[dict[str, Service]]:
    running = {"agg": start_aggregator(env), "app": start_gateway(env)}
    yield running
    for svc in running.values():
        svc.close()


def fleet(env: SyncEnv) -> dict[str, dict[str, Any]]:
    return {s["iccid"]: s for s in env.api("/api/v1/fleet/sims")["sims"]}


def hq(env: SyncEnv, method: str, path: str, body: Any = None) -> httpx.Response:
    url = f"{env.agg_url}/api/v1/fleet{path}"
    return httpx.request(method, url, json=body, headers=HEADERS, timeout=10)


def call(env: SyncEnv, answered: bool = True) -> dict[str, Any]:
    body = {"answered": answered, "connected_s": 42.0}
    return dict(httpx.post(f"{env.app_url}/test/call", json=body, timeout=10).json())


def command_state(env: SyncEnv, command_id: str) -> str:
    return str(env.api(f"/api/v1/fleet/commands/{command_id}")["state"])


def local(env: SyncEnv, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {APP_TOKEN}"}
    url = f"{env.app_url}/api/v1/compliance{path}"
    return httpx.request(method, url, json=body, headers=headers, timeout=10)


def test_sim_status_reaches_hq_and_an_hq_limit_stops_the_sim_and_switches_slot(
    env: SyncEnv, services: dict[str, Service]
) -> None:
    wait_for(lambda: set(fleet(env)) == set(ICCIDS), 15, "every slot's SIM at HQ")
    first, standby = fleet(env)[ICCIDS[0]], fleet(env)[ICCIDS[1]]
    assert (first["channel"], first["slot"], first["status"]) == ("gsm-1", 0, "active")
    assert first["number"] == "+491700001"
    assert (standby["channel"], standby["slot"], standby["status"]) == ("gsm-1", 1, "standby")
    assert standby["number"] == "+491700002"

    answer = hq(env, "PUT", f"/sims/{ICCIDS[0]}/limits", {"calls_per_day": 1, "max_call_s": 600})
    assert answer.status_code == 202
    command_id = answer.json()["command_id"]
    wait_for(lambda: command_state(env, command_id) == "applied", 15, "limits applied")

    assert call(env) == {"channel": "gsm-1", "iccid": ICCIDS[0], "max_call_s": 600}
    wait_for(lambda: fleet(env)[ICCIDS[1]]["status"] == "active", 15, "the other slot in use")
    sims = fleet(env)
    assert sims[ICCIDS[1]]["status"] == "active"
    assert sims[ICCIDS[1]]["last_switch"]["reason"] == "calls-per-day"
    assert sims[ICCIDS[0]]["status"] == "standby"
    assert sims[ICCIDS[0]]["limits"] == {"calls_per_day": 1, "max_call_s": 600}
    assert call(env)["iccid"] == ICCIDS[1]

    today = datetime.datetime.now(zoneinfo.ZoneInfo("Europe/Berlin")).date().isoformat()
    span = {"from": today, "to": today}
    wait_for(
        lambda: len(env.api("/api/v1/fleet/reports/usage", None, **span)["rows"]) == 2,
        15,
        "usage rows at HQ",
    )
    csv = httpx.get(
        f"{env.agg_url}/api/v1/fleet/reports/usage",
        params={"from": today, "to": today, "format": "csv"},
        headers=HEADERS,
        timeout=10,
    ).text.splitlines()
    assert csv[0] == (
        "day,site_id,iccid,calls,answered,answer_rate,connected_min,average_talk_s,effective_calls"
    )
    assert f"{today},site-a,{ICCIDS[0]},1,1,100.0,0.7,42.0,1" in csv


def test_a_command_issued_while_the_site_is_offline_is_applied_after_it_reconnects(
    env: SyncEnv, services: dict[str, Service]
) -> None:
    wait_for(lambda: ICCIDS[2] in fleet(env), 15, "SIM status at HQ")
    assert services["app"].signal(signal.SIGTERM) == 0
    command_id = hq(env, "POST", f"/sims/{ICCIDS[2]}/disable").json()["command_id"]
    assert command_state(env, command_id) == "pending"

    services["app"] = start_gateway(env, "app2.log")
    wait_for(lambda: command_state(env, command_id) == "applied", 15, "command applied")
    wait_for(lambda: fleet(env)[ICCIDS[2]]["status"] == "disabled", 15, "disabled at HQ")
    assert call(env)["channel"] == "gsm-1"


def test_dnc_and_calling_hour_refusals_carry_reasons_and_reach_hq(
    env: SyncEnv, services: dict[str, Service]
) -> None:
    assert hq(env, "PUT", "/dnc/+49 30 999", {"reason": "complaint"}).json()["version"] == 1
    wait_for(lambda: local(env, "GET", "/dnc").json()["company_version"] == 1, 15, "company DNC")
    assert local(env, "PUT", "/dnc/+4930888", {"reason": "asked"}).status_code == 200

    def check(destination: str, campaign: str | None = None) -> dict[str, Any]:
        body = {"destination": destination, "campaign": campaign}
        return dict(local(env, "POST", "/check", body).json())

    assert check("+4930999")["error_id"] == "dnc-company"
    assert check("+49 30 888")["error_id"] == "dnc-site"
    refused = check("+4930777", "night")
    assert refused["error_id"] == "outside-calling-hours"
    assert "calls are allowed" in refused["message"]
    assert [check("+4930777")["allowed"] for _ in range(3)] == [True, True, False]

    def refusals() -> list[str]:
        return sorted(r["error_id"] for r in env.api("/api/v1/fleet/refusals")["refusals"])

    expected = ["attempt-limit", "dnc-company", "dnc-site", "outside-calling-hours"]
    wait_for(lambda: refusals() == expected, 15, "refusals at HQ")


def second_site(env: SyncEnv, site_id: str) -> SyncEnv:
    """Another gateway site known to HQ, with the same (fake) SIM cards as the first."""
    other = SyncEnv(env.root / site_id, env.agg_port, free_port(), env.ingest, site_id)
    public, _ = keys.generate(other.root / "app" / "keys", site_id)
    agg = yaml.safe_load(env.agg_config.read_text())
    agg["ingest"]["sites"].append(
        {"site_id": site_id, "public_key": keys.load_public(public).decode()}
    )
    env.agg_config.write_text(yaml.safe_dump(agg))
    config = yaml.safe_load(env.app_config.read_text())
    config.update(site_id=site_id, data_dir=str(other.root / "app"), http={"port": other.app_port})
    other.app_config.write_text(yaml.safe_dump(config))
    return other


def refused_at_hq(env: SyncEnv, site_id: str) -> float:
    metrics = httpx.get(f"{env.agg_url}/metrics", timeout=5).text
    label = f'site="{site_id}"'
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("callmesh_sim_records_refused_total{") and label in line
    )


def test_a_site_reporting_another_sites_sim_is_refused_until_an_admin_moves_the_sim(
    env: SyncEnv,
) -> None:
    other = second_site(env, "site-b")
    running = [start_aggregator(env), start_gateway(env)]
    try:
        wait_for(lambda: set(fleet(env)) == set(ICCIDS), 15, "site-a's SIMs at HQ")
        running.append(start_gateway(other, "site-b.log"))
        wait_for(lambda: refused_at_hq(env, "site-b") >= 3, 15, "site-b's records refused")
        assert {s["site_id"] for s in fleet(env).values()} == {"site-a"}
        assert hq(env, "POST", f"/sims/{ICCIDS[2]}/disable").json()["site_id"] == "site-a"

        moved = hq(env, "POST", f"/sims/{ICCIDS[2]}/move", {"site": "site-b"})
        assert moved.json() == {"iccid": ICCIDS[2], "from_site": "site-a", "site_id": "site-b"}
        wait_for(lambda: fleet(env)[ICCIDS[2]]["status"] == "active", 15, "site-b's report taken")
        assert fleet(env)[ICCIDS[2]]["site_id"] == "site-b"
        assert fleet(env)[ICCIDS[0]]["site_id"] == "site-a"
        assert hq(env, "POST", f"/sims/{ICCIDS[2]}/disable").json()["site_id"] == "site-b"
    finally:
        for svc in running:
            svc.close()
