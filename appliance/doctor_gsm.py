"""The doctor's GSM checks: each modem and each SIM of a SIM gateway, named by channel.

The gateway probes its modems itself (it owns their ports): ``GET /api/v1/gsm/modems`` and
``GET /api/v1/gsm/sims`` of its local API (appliance/gateway/diagnostics.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from appliance.doctor import Appliance, Finding, fail, ok, warn

SIGNAL_WARN_DBM = -105


async def modems_and_sims(box: Appliance) -> list[Finding]:
    """Each modem probed now (AT, SIM, PIN, registration, signal, voice port), then each SIM
    of every slot, checked against what the modem holding it just answered."""
    if box.settings.profile != "sim-gateway":
        return []
    reports, records = await asyncio.gather(
        box.get("/api/v1/gsm/modems"), box.get("/api/v1/gsm/sims")
    )
    by_channel = {m["channel"]: m for m in reports["modems"]}
    found = [modem_finding(m) for m in reports["modems"]]
    return found + [sim_finding(sim, by_channel.get(sim["channel"])) for sim in records["sims"]]


def modem_finding(m: dict[str, Any]) -> Finding:
    """One modem's report as a Finding naming its channel."""
    name = f"modem {m['channel']}"
    if m["state"] != "ready" or not m["at"]:
        why = m["error"] or f"driver {m['state']}"
        step = f"check {m['channel']}'s USB cable and power ({m['port']}); replug or power-cycle"
        return fail("gsm", name, f"AT does not answer: {why}", step)
    if m["pin_state"] != "READY":
        return fail("gsm", name, f"SIM {m['pin_state'] or 'unknown'}", _pin_step(m))
    facts = f"AT ok, SIM ready, {m['operator'] or 'no operator'}, {m['signal_dbm']} dBm"
    if not m["registered"]:
        step = "check the antenna and that the SIM is active with its operator"
        return fail("gsm", name, f"{facts}, not registered", step)
    if m["voice_port"] is None:
        step = "the modem's PCM voice tty is missing: check udev rules and the USB composition"
        return fail("gsm", name, f"{facts}, no voice port", step)
    if m["signal_dbm"] is None or m["signal_dbm"] < SIGNAL_WARN_DBM:
        return warn("gsm", name, f"{facts}, weak signal", "move or replace the antenna")
    return ok("gsm", name, f"{facts}, registered, voice {m['voice_port']}")


def _pin_step(m: dict[str, Any]) -> str:
    if m["pin_state"] == "NOT INSERTED":
        return f"insert a SIM into {m['channel']} (or reseat it), then wait a minute"
    if m["pin_state"] == "SIM PIN":
        return f"set gateway.modems[].pin for {m['channel']} to the SIM's PIN"
    return f"the SIM in {m['channel']} is locked ({m['pin_state']}): unlock it in a phone"


def sim_finding(sim: dict[str, Any], modem: dict[str, Any] | None = None) -> Finding:
    """One SIM record as a Finding naming its channel and slot; ``modem`` is the report of
    the modem holding it, which tells whether the SIM is still in its selected slot."""
    name = f"SIM {sim['channel']} slot {sim['slot']}"
    detail = f"ICCID {sim['iccid']}, {sim['status']}"
    in_slot = modem is not None and modem["at"] and modem["slot"] == sim["slot"]
    if in_slot and modem is not None and modem["pin_state"] == "NOT INSERTED":
        step = f"insert SIM {sim['iccid']} into {sim['channel']} slot {sim['slot']} (or reseat it)"
        return fail("gsm", name, f"ICCID {sim['iccid']} not present: the slot is empty", step)
    if sim["status"] in ("active", "busy", "standby"):
        return ok("gsm", name, detail)
    if sim["status"] == "stopped":
        step = "a limit was reached: wait for the next period, or raise it at HQ (SIM fleet)"
        return warn("gsm", name, f"{detail}: {sim['reason']}", step)
    return warn("gsm", name, detail, "re-enable the SIM at HQ if it should carry calls")
