"""What `callmesh doctor` asks a running SIM gateway: each modem probed now, each SIM known.

``GET /api/v1/gsm/modems`` runs a bounded probe per modem, concurrently: ``AT`` answered,
PIN state and ICCID (``AT+CPIN?``, ``AT+CCID``), registration and signal (``AT+CREG?``,
``AT+CSQ``) and whether the PCM voice tty is present. A modem that is not ``ready`` is not
probed: its driver owns the port and is recovering it. ``GET /api/v1/gsm/sims`` lists
every SIM of both slots as the SIM policy knows it (the records HQ receives).
"""

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter

from appliance.access import local_access
from appliance.compliance.routes import LocalApiError
from appliance.gateway.channels import ModemChannel, ModemPool
from appliance.sim.service import SimService
from drivers.daemon.api_docs import ErrorBody, ValidationErrors, error_responses
from drivers.daemon.settings_base import ApiToken
from drivers.modem.errors import ModemError, SimNotInserted

PROBE_TIMEOUT_S = 5.0


async def probe_modem(channel: ModemChannel) -> dict[str, Any]:
    """One modem's answers now; ``error`` says which probe failed and why."""
    driver = channel.driver
    voice = driver.voice_path()
    report: dict[str, Any] = {
        "channel": channel.channel,
        "port": channel.entry.port,
        "imei": channel.entry.imei,
        "slot": channel.slot,
        "state": driver.state,
        "at": False,
        "pin_state": None,
        "iccid": None,
        "registered": None,
        "operator": None,
        "signal_dbm": None,
        "voice_port": voice[0] if voice else None,
        "error": None,
    }
    if driver.state != "ready":
        report["error"] = f"driver {driver.state}"
        return report
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            await _probe(channel, report)
    except SimNotInserted:
        report["pin_state"] = "NOT INSERTED"
    except (ModemError, TimeoutError) as err:
        report["error"] = str(err) or type(err).__name__
    return report


async def _probe(channel: ModemChannel, report: dict[str, Any]) -> None:
    await channel.driver.command("AT", limit=2.0)
    report["at"] = True
    network = await channel.driver.network_info()
    report.update(
        registered=network.registered, operator=network.operator, signal_dbm=network.signal_dbm
    )
    sim = await channel.driver.sim_info(wait=1.0)
    report.update(pin_state=sim.pin_state, iccid=sim.iccid or None)


def build_diagnostics_router(
    tokens: Sequence[ApiToken], pool: ModemPool, sim: SimService | None
) -> APIRouter:
    """The /api/v1/gsm/modems and /api/v1/gsm/sims routes of the local API."""
    errors = error_responses(ErrorBody, ValidationErrors)
    router = APIRouter(prefix="/api/v1/gsm", tags=["gsm"], responses=errors)
    role = Annotated[str, local_access(tokens, LocalApiError).needs("viewer")]

    @router.get("/modems", summary="Each modem probed now: AT, SIM, PIN, signal, voice port")
    async def modems(who: role) -> dict[str, Any]:
        reports = await asyncio.gather(*(probe_modem(c) for c in pool.channels))
        return {"modems": list(reports)}

    @router.get("/sims", summary="Every SIM of every slot: ICCID, status, limits and usage")
    async def sims(who: role) -> dict[str, Any]:
        return {"sims": sim.records() if sim is not None else []}

    return router
