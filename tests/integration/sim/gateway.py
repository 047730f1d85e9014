"""A SIM-gateway appliance process for tests: ``appliance.service.build`` on fake GSM
channels, plus test-only routes standing in for the PBX (``/test/call`` picks a channel
and ends the call).

Run: ``python -m tests.integration.sim.gateway CONFIG``.
"""

from __future__ import annotations

import asyncio
import datetime
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from appliance.settings import ApplianceSettings
from appliance.sim import CallOutcome, Pick, SimIdentity, SimService
from appliance.sim.fake import FakeSimChannel
from drivers.daemon.config_layers import collect_layers, load_settings
from drivers.daemon.http import HttpServer
from drivers.daemon.lifecycle import Component, run_until_signalled

ICCIDS = ("8949000000000000011", "8949000000000000012", "8949000000000000021")


def channels() -> list[FakeSimChannel]:
    """gsm-1: a dual-SIM modem; gsm-2: one SIM."""
    return [
        FakeSimChannel(
            "gsm-1",
            [
                SimIdentity(ICCIDS[0], number="+491700001"),
                SimIdentity(ICCIDS[1], number="+491700002"),
            ],
        ),
        FakeSimChannel("gsm-2", [SimIdentity(ICCIDS[2], number="+491700003")]),
    ]


class CallRequest(BaseModel):
    answered: bool = True
    connected_s: float = 60.0


def build(settings: ApplianceSettings) -> list[Component]:
    """The appliance's components on fake channels, plus the test-only routes."""
    from appliance import service

    fakes = channels()
    components = service.build(settings, sim_channels=fakes)
    sim = next(c for c in components if isinstance(c, SimService))
    http = next(c for c in components if isinstance(c, HttpServer))
    _test_routes(http.app, sim, fakes)
    return components


def _test_routes(app: FastAPI, sim: SimService, fakes: list[FakeSimChannel]) -> None:
    @app.post("/test/call")
    async def call(request: CallRequest) -> dict[str, Any]:
        picked = sim.pick()
        if not isinstance(picked, Pick):
            return {"refused": picked.error_id, "reasons": picked.reasons}
        ended = datetime.datetime.now(datetime.UTC)
        outcome = CallOutcome(
            picked.channel, picked.iccid, ended, request.answered, request.connected_s
        )
        await sim.call_ended(outcome)
        return {"channel": picked.channel, "iccid": picked.iccid, "max_call_s": picked.max_call_s}

    @app.get("/test/channels")
    async def states() -> dict[str, Any]:
        return {f.channel: {"slot": f.slot, "selects": f.selects} for f in fakes}


def main() -> None:
    settings = load_settings(ApplianceSettings, collect_layers(Path(sys.argv[1])))
    asyncio.run(run_until_signalled(build(settings)))


if __name__ == "__main__":
    main()
