"""The doctor's self-test of a running appliance: every probe bounded, every failure with a
next step (the list, what each proves and the JSON schema are in docs/doctor.md).

Theory of operation: the CLI (the composition root) gives a ``Probes`` record, the
drivers' probe functions and an HTTP client for the appliance's local API. Each check is
a coroutine yielding Findings; all run concurrently under their own timeouts, and the
whole run under ``RUN_TIMEOUT_S``, so a hung component costs its check, never the report.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from appliance.doctor import Finding
from appliance.settings import ApplianceSettings
from drivers.sip.ng import NgClient
from drivers.sip.probe import sip_options_ok
from drivers.sip.register_probe import Account, register
from drivers.sync import keys
from drivers.sync.probe import HandshakeFailed, curve_handshake

RUN_TIMEOUT_S = 50.0
PROBE_TIMEOUT_S = 8.0
DISK_FAIL_BYTES = 256 * 1024 * 1024
DISK_WARN_FRACTION = 0.10
STORE_WARN_PERCENT = 80.0
SIGNAL_WARN_DBM = -105

Check = Callable[[], Awaitable[list[Finding]]]


def ok(group: str, check: str, detail: str) -> Finding:
    return Finding(group, check, "ok", detail)


def warn(group: str, check: str, detail: str, next_step: str) -> Finding:
    return Finding(group, check, "warn", detail, next_step)


def fail(group: str, check: str, detail: str, next_step: str) -> Finding:
    return Finding(group, check, "fail", detail, next_step)


@dataclass(frozen=True)
class Appliance:
    """The running appliance as the doctor reaches it: settings and its local API."""

    settings: ApplianceSettings
    api: httpx.AsyncClient

    async def get(self, path: str) -> Any:
        response = await self.api.get(path, timeout=PROBE_TIMEOUT_S)
        response.raise_for_status()
        return response.json()


async def run_live(box: Appliance) -> list[Finding]:
    """Every live check of ``box``, in a stable order, within ``RUN_TIMEOUT_S``."""
    checks: list[tuple[str, str, Check]] = [
        ("system", "time sync", lambda: asyncio.to_thread(time_sync)),
        ("system", "disk", lambda: asyncio.to_thread(disk, box.settings)),
        ("appliance", "local API", lambda: service(box)),
        ("hq", "HQ link", lambda: hq_link(box)),
        ("sip", "SIP edge", lambda: sip_edge(box.settings)),
        ("sip", "rtpengine", lambda: rtpengine(box.settings)),
        ("sip", "media workers", lambda: media_workers(box.settings)),
        ("gsm", "modems", lambda: modems(box)),
        ("gsm", "SIMs", lambda: sims(box)),
    ]
    async with asyncio.timeout(RUN_TIMEOUT_S):
        results = await asyncio.gather(*(_bounded(*c) for c in checks))
    return [finding for found in results for finding in found]


async def _bounded(group: str, name: str, check: Check) -> list[Finding]:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S * 2):
            return await check()
    except TimeoutError:
        return [fail(group, name, "no answer in time", "restart the appliance service")]
    except httpx.HTTPStatusError as err:
        detail = f"local API answered {err.response.status_code} for {err.request.url.path}"
        return [fail(group, name, detail, "check the API token in the config; upgrade the box")]
    except httpx.HTTPError as err:
        detail = f"local API unreachable: {err or type(err).__name__}"
        return [fail(group, name, detail, "start the appliance service (systemctl start)")]


def time_sync() -> list[Finding]:
    """NTP synchronised, as systemd-timesyncd (or chrony) tells ``timedatectl``."""
    tool = shutil.which("timedatectl")
    if tool is None:
        return [warn("system", "time sync", "timedatectl not found", "install systemd")]
    try:
        out = subprocess.run(
            [tool, "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True, text=True, timeout=3, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        return [warn("system", "time sync", f"timedatectl: {err}", "check systemd is running")]
    if out.stdout.strip() == "yes":
        return [ok("system", "time sync", "NTP synchronised")]
    reason = (out.stdout.strip() or out.stderr.strip() or "unknown").splitlines()[0]
    return [
        warn(
            "system",
            "time sync",
            f"clock not NTP synchronised ({reason})",
            "enable NTP (timedatectl set-ntp true) and allow UDP 123 to a time server",
        )
    ]


def disk(settings: ApplianceSettings) -> list[Finding]:
    """Free space on the data directory's file system."""
    usage = shutil.disk_usage(settings.data_dir)
    free = usage.free / usage.total if usage.total else 0.0
    detail = f"{usage.free // 2**20} MiB free of {usage.total // 2**20} MiB ({free:.0%})"
    step = "free space under the data directory (old recordings, logs) or grow the disk"
    if usage.free < DISK_FAIL_BYTES:
        return [fail("system", "disk", detail, step)]
    if free < DISK_WARN_FRACTION:
        return [warn("system", "disk", detail, step)]
    return [ok("system", "disk", detail)]


async def service(box: Appliance) -> list[Finding]:
    """The appliance answers ``/healthz``; its store's usage of the LMDB map."""
    health = await box.get("/healthz")
    found = [ok("appliance", "local API", f"{health['site_id']} ({health['profile']}) answers")]
    store = health["checks"].get("store", {"ok": False, "detail": "no store check"})
    used = re.match(r"([0-9.]+)% of the map used", store["detail"])
    step = "raise store.map_size_mb in the config, or free disk space, and restart"
    if not store["ok"]:
        found.append(fail("system", "store", store["detail"], step))
    elif used and float(used.group(1)) >= STORE_WARN_PERCENT:
        found.append(warn("system", "store", store["detail"], step))
    else:
        found.append(ok("system", "store", store["detail"]))
    return found


async def hq_link(box: Appliance) -> list[Finding]:
    """A CurveZMQ handshake with HQ using the site's keys, and the sync client's session."""
    sync = box.settings.sync
    if not sync.enabled:
        return [warn("hq", "HQ link", "sync disabled in the config", "enrol the site with HQ")]
    public, secret = keys.load_secret(box.settings.key_file())
    try:
        took = await curve_handshake(
            sync.endpoint, public, secret, sync.server_public_key.encode(), PROBE_TIMEOUT_S / 2
        )
    except HandshakeFailed as err:
        return [fail("hq", "HQ link", str(err), _HQ_STEPS[err.error_id])]
    health = await box.get("/healthz")
    session = health["checks"].get("sync", {}).get("detail", "unknown")
    detail = f"CurveZMQ handshake with {sync.endpoint} in {took * 1000:.0f} ms; session {session}"
    if session != "up":
        return [warn("hq", "HQ link", detail, "wait a minute; if it stays down, read the log")]
    return [ok("hq", "HQ link", detail)]


_HQ_STEPS = {
    "refused": "HQ does not know this site's key: re-enrol the site or check sync.key_file",
    "timeout": "check the VPN and that HQ runs and listens on sync.endpoint (firewall, route)",
}


async def sip_edge(settings: ApplianceSettings) -> list[Finding]:
    """A REGISTER with the first extension's credentials, removed again afterwards."""
    if not settings.pbx.enabled:
        return []
    if not settings.sip.extensions:
        return [warn("sip", "SIP edge", "no extension to register", "add one under sip.extensions")]
    ext = settings.sip.extensions[0]
    pbx = settings.pbx
    account = Account(ext.number, ext.password, settings.sip.domain, pbx.sip_host, pbx.sip_port)
    code = await register(account, wait_s=PROBE_TIMEOUT_S / 4, expires=pbx.min_expires_s)
    where = f"{pbx.sip_host}:{pbx.sip_port}"
    if code != 200:
        answer = f"answered {code}" if code else "no answer"
        step = _SIP_STEPS.get(code, "check Kamailio in the appliance log; restart the service")
        return [fail("sip", "SIP edge", f"REGISTER {ext.number} at {where}: {answer}", step)]
    await register(account, wait_s=PROBE_TIMEOUT_S / 4, expires=0)
    return [ok("sip", "SIP edge", f"REGISTER {ext.number} at {where}: 200 OK")]


_SIP_STEPS = {
    0: "Kamailio does not answer: check the appliance service and its log",
    401: "the extension's password was refused: check sip.extensions in the config",
    403: "the edge refused the extension: check sip.extensions and the ban list",
}


async def rtpengine(settings: ApplianceSettings) -> list[Finding]:
    """rtpengine answers an ng ``ping`` on its loopback control port."""
    if not settings.pbx.enabled:
        return []
    port = settings.pbx.rtpengine_ng_port
    if await NgClient("127.0.0.1", port, timeout=PROBE_TIMEOUT_S / 4).ping():
        return [ok("sip", "rtpengine", f"ng ping on 127.0.0.1:{port}: pong")]
    step = "restart the appliance service; if it fails again, read rtpengine's log lines"
    return [fail("sip", "rtpengine", f"no pong on 127.0.0.1:{port}", step)]


def worker_ports(settings: ApplianceSettings) -> list[tuple[str, int]]:
    """Every media worker's loopback SIP port (features and GSM channels)."""
    pbx = settings.pbx
    ports = [(f"w{i}", pbx.media.port_base + i) for i in range(pbx.media.workers)]
    channels = sum(len(group.channels) for group in pbx.gsm.groups)
    gsm = math.ceil(channels / pbx.gsm.channels_per_worker)
    return ports + [(f"g{i}", pbx.gsm.port_base + i) for i in range(gsm)]


async def media_workers(settings: ApplianceSettings) -> list[Finding]:
    """Each media worker answers SIP OPTIONS on its loopback port."""
    if not settings.pbx.enabled:
        return []
    workers = worker_ports(settings)
    answers = await asyncio.gather(
        *(sip_options_ok("127.0.0.1", port, PROBE_TIMEOUT_S / 4) for _, port in workers)
    )
    step = "restart the appliance service (it restarts workers); read the worker's log lines"
    return [
        ok("sip", f"media worker {name}", f"answers OPTIONS on 127.0.0.1:{port}")
        if answered
        else fail("sip", f"media worker {name}", f"no answer on 127.0.0.1:{port}", step)
        for (name, port), answered in zip(workers, answers, strict=True)
    ]


async def modems(box: Appliance) -> list[Finding]:
    """Each modem, probed now by the gateway: AT, SIM, PIN, registration, signal, voice port."""
    if box.settings.profile != "sim-gateway":
        return []
    reports = (await box.get("/api/v1/gsm/modems"))["modems"]
    return [modem_finding(report) for report in reports]


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


async def sims(box: Appliance) -> list[Finding]:
    """Each SIM of every slot as the SIM policy sees it: status, limits reached."""
    if box.settings.profile != "sim-gateway":
        return []
    records = (await box.get("/api/v1/gsm/sims"))["sims"]
    return [sim_finding(record) for record in records]


def sim_finding(sim: dict[str, Any]) -> Finding:
    """One SIM record as a Finding naming its channel and slot."""
    name = f"SIM {sim['channel']} slot {sim['slot']}"
    detail = f"ICCID {sim['iccid']}, {sim['status']}"
    if sim["status"] in ("active", "busy", "standby"):
        return ok("gsm", name, detail)
    if sim["status"] == "stopped":
        step = "a limit was reached: wait for the next period, or raise it at HQ (SIM fleet)"
        return warn("gsm", name, f"{detail}: {sim['reason']}", step)
    return warn("gsm", name, detail, "re-enable the SIM at HQ if it should carry calls")
