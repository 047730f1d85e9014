"""/metrics for SIMs: one series per channel and selected SIM, with registration, signal,
the review flag and today's usage, read from a real SimService over a temporary store."""

from __future__ import annotations

import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from appliance.sim import CallOutcome, Pick, SimIdentity
from appliance.sim.fake import FakeSimChannel
from appliance.sim.metrics import SimCollector
from tests.unit.sim.test_sim_service import A, Box, C, settings


async def test_sim_series_carry_channel_and_iccid_and_show_the_review_flag(
    tmp_path: Path,
) -> None:
    box = Box(
        tmp_path / "s",
        settings(groups={}, max_failures=9, review_window=5, review_min_baseline_calls=5),
    )
    box.channels = [
        FakeSimChannel("gsm-1", [SimIdentity(A)], signal_dbm=-83),
        FakeSimChannel("gsm-2", [SimIdentity(C)], unregistered={C}),
        FakeSimChannel("gsm-3", [None]),
    ]
    service = await box.start()
    registry = CollectorRegistry()
    registry.register(SimCollector(service))
    now = datetime.datetime.now(datetime.UTC)
    for answered in [True] * 10 + [False] * 9:
        picked = service.pick(now)
        assert isinstance(picked, Pick), picked
        seconds = 20.0 if answered else 0.0
        await service.call_ended(CallOutcome(picked.channel, picked.iccid, now, answered, seconds))

    def value(name: str, channel: str, iccid: str) -> float | None:
        return registry.get_sample_value(name, {"channel": channel, "iccid": iccid})

    assert value("callmesh_sim_registered", "gsm-1", A) == 1
    assert value("callmesh_sim_signal_dbm", "gsm-1", A) == -83
    assert value("callmesh_sim_review_flagged", "gsm-1", A) == 1
    assert value("callmesh_sim_calls_today", "gsm-1", A) == 19
    assert value("callmesh_sim_connected_today_seconds", "gsm-1", A) == 200
    assert value("callmesh_sim_registered", "gsm-2", C) == 0
    assert value("callmesh_sim_review_flagged", "gsm-2", C) == 0
    assert value("callmesh_sim_registered", "gsm-3", "") == 0
    assert value("callmesh_sim_review_flagged", "gsm-3", "") is None
    await box.stop()
