"""Routing tables from the HQ directory to a real appliance process, and back."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from aggregator.store.schema import snapshots
from appliance.routing.service import RoutingService
from appliance.store import Store
from tests.procs import Service
from tests.sync_env import TOKEN, SyncEnv, make_env, wait_for


def directory(extra_extensions: tuple[str, ...] = ()) -> dict[str, Any]:
    """site-a is the appliance under test; site-b exists only in the directory."""
    return {
        "plan": {"flat": True, "site_prefix": ""},
        "sites": [
            {
                "id": "site-a",
                "sip_address": "10.1.0.10",
                "timezone": "Europe/Berlin",
                "ranges": [{"first": "100", "last": "199"}],
            },
            {
                "id": "site-b",
                "sip_address": "10.2.0.10",
                "ranges": [{"first": "200", "last": "299"}],
                "extensions": list(extra_extensions),
            },
        ],
        "trunks": [{"id": "a-sip", "site": "site-a", "numbers": ["+4930100"]}],
        "rules": [{"id": "out", "prefix": "0", "targets": [{"trunk": "a-sip", "strip": 1}]}],
    }


def put(env: SyncEnv, path: str, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{env.agg_url}/api/v1/directory{path}"
    return httpx.put(url, json=body, headers=headers, timeout=10)


def hq_state(env: SyncEnv) -> dict[str, Any]:
    states = env.api("/api/v1/directory/snapshots")["snapshots"]
    return next(s for s in states if s["site_id"] == env.site_id)


def app_metric(env: SyncEnv, name: str) -> float:
    text = httpx.get(f"{env.app_url}/metrics", timeout=5).text
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def running_version(env: SyncEnv) -> int:
    return int(app_metric(env, "callmesh_routing_version"))


def start(env: SyncEnv, which: str, log: str) -> Service:
    config, url = (
        (env.agg_config, env.agg_url) if which == "aggregator" else (env.app_config, env.app_url)
    )
    svc = Service([which, "run", "-c", str(config)], env.root / log)
    svc.wait_healthy(f"{url}/healthz")
    return svc


@pytest.fixture
def env(tmp_path: Path) -> SyncEnv:
    return make_env(tmp_path)


@pytest.fixture
def services(env: SyncEnv) -> Iterator[dict[str, Service]]:
    running = {
        "agg": start(env, "aggregator", "agg.log"),
        "app": start(env, "appliance", "app.log"),
    }
    yield running
    for svc in running.values():
        svc.close()


def applied(env: SyncEnv, version: int) -> bool:
    return running_version(env) == version and hq_state(env)["applied_version"] == version


def test_directory_put_reaches_the_appliance_and_a_one_extension_change_is_an_update(
    env: SyncEnv, services: dict[str, Service]
) -> None:
    assert put(env, "", directory()).json()["published"] == {"site-a": 1, "site-b": 1}
    wait_for(lambda: applied(env, 1), 20, "version 1 applied and reported to HQ")
    assert (
        app_metric(env, 'callmesh_routing_messages_total{message="snapshot",outcome="applied"}')
        == 1
    )

    site_b = directory(("2500",))["sites"][1]
    assert put(env, "/sites/site-b", site_b).json()["published"] == {"site-a": 2, "site-b": 2}
    wait_for(lambda: applied(env, 2), 20, "version 2 applied")
    assert (
        app_metric(env, 'callmesh_routing_messages_total{message="update",outcome="applied"}') == 1
    )
    assert hq_state(env) == {
        "site_id": "site-a",
        "version": 2,
        "applied_version": 2,
        "refused_reason": "",
    }


def test_bad_snapshot_is_refused_reported_at_hq_and_the_old_table_stays(
    env: SyncEnv, services: dict[str, Service]
) -> None:
    put(env, "", directory())
    wait_for(lambda: applied(env, 1), 20, "version 1 applied")
    engine = sa.create_engine(f"sqlite:///{env.root / 'agg' / 'aggregator.db'}")
    try:
        with engine.begin() as conn:
            row = conn.execute(sa.select(snapshots).where(snapshots.c.site_id == env.site_id)).one()
            broken = {
                **row.data,
                "rule:out": {
                    **row.data["rule:out"],
                    "targets": [{**row.data["rule:out"]["targets"][0], "trunk": "gone"}],
                },
            }
            conn.execute(
                sa.update(snapshots)
                .where(snapshots.c.site_id == env.site_id)
                .values(version=2, data=broken)
            )
    finally:
        engine.dispose()
    wait_for(lambda: hq_state(env)["refused_reason"] != "", 20, "the refusal to reach HQ")
    state = hq_state(env)
    assert state["applied_version"] == 1
    assert state["refused_reason"] == "version 2: rule:out: unknown trunk 'gone'"
    assert running_version(env) == 1
    outcome = 'callmesh_routing_messages_total{message="snapshot",outcome="refused"}'
    assert app_metric(env, outcome) == 1

    assert put(env, "", directory(("2600",))).json()["published"] == {"site-a": 3, "site-b": 2}
    wait_for(lambda: applied(env, 3), 20, "the next good version to replace the refused one")
    assert hq_state(env)["refused_reason"] == ""


def test_appliance_restarted_while_hq_is_down_routes_from_its_stored_table(
    env: SyncEnv, services: dict[str, Service]
) -> None:
    put(env, "", directory(("2500",)))
    wait_for(lambda: applied(env, 1), 20, "version 1 applied")
    services["agg"].close()
    assert services["app"].signal(signal.SIGTERM) == 0
    services["app"] = start(env, "appliance", "app2.log")
    assert running_version(env) == 1
    assert app_metric(env, "callmesh_sync_connected") == 0
    assert services["app"].signal(signal.SIGTERM) == 0
    store = Store.open(env.root / "app" / "store")
    try:
        routing = RoutingService(lambda: store)
        asyncio.run(routing.start())
        assert routing.lookup("2500").targets[0].address == "10.2.0.10"
        assert routing.lookup("0301234").targets[0].trunk == "a-sip"
    finally:
        store.close()
