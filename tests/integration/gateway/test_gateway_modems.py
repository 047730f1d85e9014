"""A SIM-gateway appliance drives simulated modems through the real driver and reports
every SIM to HQ; an unplugged modem leaves and rejoins the pool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from drivers.modem.simulator import ModemSimulator, SimulatorConfig
from tests.integration.test_sync import start_aggregator, start_appliance
from tests.sync_env import TOKEN, SyncEnv, make_env, wait_for


def simulated(tmp_path: Path, count: int) -> Iterator[ModemSimulator]:
    config = SimulatorConfig(
        profile="quectel-ec25",
        count=count,
        sims=2,
        directory=str(tmp_path / "by-id"),
        reset_seconds=1.0,
    )
    with ModemSimulator(config) as sim:
        sim.wait_booted(30)
        yield sim


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[ModemSimulator]:
    yield from simulated(tmp_path, 2)


@pytest.fixture
def rack(tmp_path: Path) -> Iterator[ModemSimulator]:
    """Four dual-SIM modems, like the demo's SIM gateway."""
    yield from simulated(tmp_path, 4)


def gateway_env(tmp_path: Path, simulator: ModemSimulator) -> SyncEnv:
    env = make_env(tmp_path)
    config = yaml.safe_load(env.app_config.read_text())
    config["profile"] = "sim-gateway"
    config["gateway"] = {
        "ready_timeout_s": 30,
        "modems": [
            {"channel": f"gsm-{m['index']}", "port": m["at_by_id"], "imei": m["imei"]}
            for m in simulator.info()
        ],
    }
    env.app_config.write_text(yaml.safe_dump(config))
    return env


def health(env: SyncEnv) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{env.app_url}/healthz", timeout=5).json()
    return body


def fleet(env: SyncEnv) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{env.agg_url}/api/v1/fleet/sims", timeout=5, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    response.raise_for_status()
    sims: list[dict[str, Any]] = response.json()["sims"]
    return sims


def test_gateway_reports_the_simulated_sims_to_hq(
    tmp_path: Path, simulator: ModemSimulator
) -> None:
    env = gateway_env(tmp_path, simulator)
    # The SIM stores the ICCID with BCD filler; the driver reports the digits.
    expected = {m["sims"][0]["iccid"].rstrip("F") for m in simulator.info()}  # type: ignore[index]
    agg = start_aggregator(env)
    app = start_appliance(env)
    try:
        assert health(env)["checks"]["modems"] == {"ok": True, "detail": "2/2 modems ready"}
        wait_for(lambda: expected <= {s["iccid"] for s in fleet(env)}, 30, "SIMs at HQ")
        metrics = httpx.get(f"{env.app_url}/metrics", timeout=5).text
        assert 'callmesh_modem_commands_total{channel="gsm-0"}' in metrics

        simulator.unplug(1, replug_after=5.0)
        wait_for(
            lambda: health(env)["checks"]["modems"]["detail"] == "1/2 modems ready",
            30,
            "the unplugged modem to leave the pool",
            interval=0.05,
        )
        wait_for(
            lambda: health(env)["checks"]["modems"]["detail"] == "2/2 modems ready",
            60,
            "the modem to rejoin after recovery",
        )
    finally:
        app.close()
        agg.close()


def test_hq_lists_both_sims_of_every_dual_sim_modem_and_each_modem_keeps_its_slot(
    tmp_path: Path, rack: ModemSimulator
) -> None:
    env = gateway_env(tmp_path, rack)
    sims: dict[str, tuple[str, int, object]] = {}
    for modem in rack.info():
        cards: list[dict[str, Any]] = modem["sims"]  # type: ignore[assignment]
        for slot, card in enumerate(cards):
            sims[str(card["iccid"]).rstrip("F")] = (f"gsm-{modem['index']}", slot, card["imsi"])
    agg = start_aggregator(env)
    app = start_appliance(env)
    try:
        wait_for(lambda: len(fleet(env)) == 8, 90, "all 8 SIMs at HQ")
        wait_for(
            lambda: sorted(s["status"] for s in fleet(env)) == ["active"] * 4 + ["standby"] * 4,
            30,
            "every modem back on its first slot",
        )
        assert {s["iccid"]: (s["channel"], s["slot"], s["imsi"]) for s in fleet(env)} == sims
        assert {s["slot"] for s in fleet(env) if s["status"] == "active"} == {0}
        assert [m["slot"] for m in rack.info()] == [0, 0, 0, 0]
    finally:
        app.close()
        agg.close()
