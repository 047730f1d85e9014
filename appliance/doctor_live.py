"""The doctor's self-test of a running appliance: every probe bounded, every failure with a
next step (the list, what each proves and the JSON schema are in docs/doctor.md).

Theory of operation: the CLI (the composition root) gives an ``Appliance`` record, the
settings and an HTTP client for the appliance's local API; the probes themselves are the
drivers' (SIP, ng, CurveZMQ), on loopback or towards HQ. Each check is
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

import httpx

from appliance.doctor import Appliance, Finding, fail, ok, warn
from appliance.doctor_gsm import modems_and_sims
from appliance.settings import ApplianceSettings
from drivers.sip.echo_probe import echo_call
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

Check = Callable[[], Awaitable[list[Finding]]]


async def run_live(box: Appliance, as_user: bool = True) -> list[Finding]:
    """Every live check of ``box``, in a stable order, within ``RUN_TIMEOUT_S``.

    ``as_user=False`` leaves out what acts as the first extension (the REGISTER and the
    loopback call, which leaves a CDR), as the service's own scheduled runs do.
    """
    checks: list[tuple[str, str, Check]] = [
        ("system", "time sync", lambda: asyncio.to_thread(time_sync)),
        ("system", "disk", lambda: asyncio.to_thread(disk, box.settings)),
        ("appliance", "local API", lambda: service(box)),
        ("hq", "HQ link", lambda: hq_link(box)),
        ("sip", "SIP edge", lambda: sip_edge(box.settings) if as_user else _none()),
        ("sip", "loopback call", lambda: loopback_call(box.settings) if as_user else _none()),
        ("sip", "rtpengine", lambda: rtpengine(box.settings)),
        ("sip", "media workers", lambda: media_workers(box.settings)),
        ("gsm", "modems and SIMs", lambda: modems_and_sims(box)),
    ]
    async with asyncio.timeout(RUN_TIMEOUT_S):
        results = await asyncio.gather(*(_bounded(*c) for c in checks))
    return [finding for found in results for finding in found]


async def _none() -> list[Finding]:
    return []


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
    except OSError as err:
        return [fail(group, name, str(err), "check that path and its permissions")]


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
        return [warn("system", "time sync", f"timedatectl: {err}", _ASK_SYSTEMD)]
    answer = out.stdout.strip()
    if out.returncode != 0:
        reason = (out.stderr.strip() or f"exit {out.returncode}").splitlines()[0]
        return [warn("system", "time sync", f"cannot ask timedatectl: {reason}", _ASK_SYSTEMD)]
    if answer == "yes":
        return [ok("system", "time sync", "NTP synchronised")]
    step = "enable NTP (timedatectl set-ntp true) and allow UDP 123 to a time server"
    return [warn("system", "time sync", "clock not NTP synchronised", step)]


_ASK_SYSTEMD = "run the doctor on the appliance itself (systemd with timesyncd or chrony)"


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
    try:
        public, secret = keys.load_secret(box.settings.key_file())
    except keys.KeyFileError as err:
        return [
            fail("hq", "HQ link", str(err), "restore the site's key file, or re-enrol the site")
        ]
    failed: list[HandshakeFailed] = []
    for endpoint in sync.nodes():
        try:
            took = await curve_handshake(
                endpoint, public, secret, sync.server_public_key.encode(), PROBE_TIMEOUT_S / 2
            )
            break
        except HandshakeFailed as err:
            failed.append(err)
    else:
        steps = _HQ_STEPS[failed[-1].error_id]
        return [fail("hq", "HQ link", "; ".join(map(str, failed)), steps)]
    health = await box.get("/healthz")
    session = health["checks"].get("sync", {}).get("detail", "unknown")
    detail = f"CurveZMQ handshake with {endpoint} in {took * 1000:.0f} ms; session {session}"
    if session != "up":
        return [warn("hq", "HQ link", detail, "wait a minute; if it stays down, read the log")]
    return [ok("hq", "HQ link", detail)]


_HQ_STEPS = {
    "refused": "HQ does not know this site's key: re-enrol the site or check sync.key_file",
    "timeout": "check the VPN and that HQ runs and listens on sync.endpoints (firewall, route)",
}


def test_account(settings: ApplianceSettings) -> Account | None:
    """The first extension of the config, at the SIP edge's address."""
    if not settings.sip.extensions:
        return None
    ext, pbx = settings.sip.extensions[0], settings.pbx
    return Account(ext.number, ext.password, settings.sip.domain, pbx.sip_host, pbx.sip_port)


async def sip_edge(settings: ApplianceSettings) -> list[Finding]:
    """A REGISTER with the first extension's credentials, removed again afterwards."""
    if not settings.pbx.enabled:
        return []
    account, pbx = test_account(settings), settings.pbx
    if account is None:
        return [warn("sip", "SIP edge", "no extension to register", "add one under sip.extensions")]
    ext = account.user
    code = await register(account, wait_s=PROBE_TIMEOUT_S / 4, expires=pbx.min_expires_s)
    where = f"{pbx.sip_host}:{pbx.sip_port}"
    if code != 200:
        answer = f"answered {code}" if code else "no answer"
        step = _SIP_STEPS.get(code, "check Kamailio in the appliance log; restart the service")
        return [fail("sip", "SIP edge", f"REGISTER {ext} at {where}: {answer}", step)]
    await register(account, wait_s=PROBE_TIMEOUT_S / 4, expires=0)
    return [ok("sip", "SIP edge", f"REGISTER {ext} at {where}: 200 OK")]


async def loopback_call(settings: ApplianceSettings) -> list[Finding]:
    """A call to the echo code through Kamailio, rtpengine and a media worker; audio back."""
    account, pbx = test_account(settings), settings.pbx
    if not pbx.enabled or not pbx.media.workers or account is None:
        return []
    code = pbx.dialplan.feature_codes.echo
    result = await echo_call(account, code, wait_s=PROBE_TIMEOUT_S / 2)
    if result.code != 200:
        answer = f"answered {result.code}" if result.code else "no answer"
        step = _SIP_STEPS.get(result.code, "check the dial plan and the media workers' log lines")
        return [fail("sip", "loopback call", f"call to {code}: {answer}", step)]
    detail = (
        f"call to {code} as {account.user}: {result.sent} RTP packets sent, "
        f"{result.received} received, {result.audible} of them audible"
    )
    if result.audible * 2 < result.sent:
        step = "no audio: check rtpengine (its RTP port range) and the media workers' log lines"
        return [fail("sip", "loopback call", detail, step)]
    return [ok("sip", "loopback call", detail)]


_SIP_STEPS = {
    0: "Kamailio does not answer: check the appliance service and its log",
    401: "the extension's password was refused: check sip.extensions in the config",
    407: "the extension's password was refused: check sip.extensions in the config",
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
