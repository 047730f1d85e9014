"""`callmesh doctor`: check this machine and, with --config, self-test the running appliance."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from appliance.doctor import Finding
    from appliance.settings import ApplianceSettings

SCHEMA_VERSION = 1
COLOURS = {"ok": "\033[32m", "warn": "\033[33m", "fail": "\033[31m"}
MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
UPLOAD_TIMEOUT_S = 10.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh doctor`."""
    parser = sub.add_parser(
        "doctor",
        help="self-test: software, config, time, disk, HQ link, SIP, media, modems, SIMs",
        description="Check the Python version, packages and system tools; with --config, the "
        "configuration, then self-test the running appliance: time sync, disk and store, "
        "network, the HQ link (CurveZMQ handshake), the SIP edge (REGISTER), rtpengine, media "
        "workers, each modem and each SIM. Every failure says what to do next. Exit 0 when "
        "nothing failed (warnings allowed), 1 when a check failed, 2 on a usage error. "
        "See docs/doctor.md.",
    )
    parser.add_argument("--config", "-c", type=Path, metavar="FILE", help="appliance config")
    parser.add_argument(
        "--offline", action="store_true", help="with --config: skip the running appliance"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--upload",
        action="store_true",
        help="with --config: hand the report to the running appliance, which sends it to HQ "
        "(the site page shows the newest report)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.upload and (args.config is None or args.offline):
        print("callmesh doctor: --upload needs --config and a running appliance", file=sys.stderr)
        return 2
    return run_doctor(args.config, args.offline, args.json, args.upload)


def run_doctor(
    config: Path | None, offline: bool = False, as_json: bool = False, upload: bool = False
) -> int:
    """Run the checks, print the report, upload it if asked; the doctor's exit code."""
    from appliance.doctor import run_checks

    started = time.time()
    findings = run_checks(config)
    settings = _settings(config) if config and not offline else None
    if settings is not None:
        findings += asyncio.run(_live(settings))
    document = report(findings, started)
    if as_json:
        print(json.dumps(document, indent=2))
    else:
        print_human(findings, colour=sys.stdout.isatty())
    uploaded = settings is None or not upload or asyncio.run(_upload(settings, document))
    return 1 if any(f.status == "fail" for f in findings) or not uploaded else 0


def report(findings: Sequence[Finding], at: float) -> dict[str, Any]:
    """The ``--json`` document (schema in docs/doctor.md); ``at`` is when the run began."""
    counts = {s: sum(f.status == s for f in findings) for s in ("ok", "warn", "fail")}
    worst = "fail" if counts["fail"] else ("warn" if counts["warn"] else "ok")
    return {
        "schema": SCHEMA_VERSION,
        "at": at,
        "source": "cli",
        "status": worst,
        "counts": counts,
        "findings": [f.as_dict() for f in findings],
    }


def print_human(findings: Sequence[Finding], colour: bool) -> None:
    """Findings grouped, each failure or warning followed by its next step."""
    for group in dict.fromkeys(f.group for f in findings):
        print(group)
        for f in (f for f in findings if f.group == group):
            mark = MARKS[f.status]
            if colour:
                mark = f"{COLOURS[f.status]}{mark}\033[0m"
            print(f"  [{mark}] {f.check:<24} {f.detail}")
            if f.next_step:
                print(f"         {'':<24} next: {f.next_step}")


def _settings(path: Path) -> ApplianceSettings | None:
    from appliance.settings import ApplianceSettings
    from drivers.daemon.config_layers import ConfigError, collect_layers, load_settings

    try:
        return load_settings(ApplianceSettings, collect_layers(path))
    except ConfigError:
        return None


def _client(settings: ApplianceSettings) -> httpx.AsyncClient:
    import httpx

    tokens = settings.api.tokens
    http = settings.http
    return httpx.AsyncClient(
        base_url=f"http://{http.host}:{http.port}",
        headers={"Authorization": f"Bearer {tokens[0].token}"} if tokens else {},
    )


async def _live(settings: ApplianceSettings) -> list[Finding]:
    from appliance.doctor import Appliance
    from appliance.doctor_live import run_live

    async with _client(settings) as api:
        return await run_live(Appliance(settings, api))


async def _upload(settings: ApplianceSettings, document: dict[str, Any]) -> bool:
    """Hand the report to the running appliance for HQ; say what happened on stderr."""
    import httpx

    try:
        async with _client(settings) as api:
            answer = await api.post(
                "/api/v1/doctor/report", json=document, timeout=UPLOAD_TIMEOUT_S
            )
    except httpx.HTTPError as err:
        print(f"upload: the appliance is unreachable ({err}): start it", file=sys.stderr)
        return False
    if answer.status_code == 200:
        queued = answer.json()["queued"]
        said = "queued for HQ" if queued else "not queued: the appliance holds a newer report"
        print(f"upload: {said}", file=sys.stderr)
        return True
    print(f"upload refused: {answer.status_code} {_why(answer)}", file=sys.stderr)
    return False


def _why(answer: httpx.Response) -> str:
    if answer.status_code == 404:
        return "the appliance is older than this command: upgrade it"
    if answer.status_code == 409:
        return "the appliance does not sync with HQ (sync.enabled is false)"
    if answer.status_code in (401, 403):
        return "the first token of api.tokens needs the operator or admin role"
    try:
        body = answer.json()
        return f"{body['error_id']}: {body['message']}"
    except (ValueError, KeyError, TypeError):
        return answer.text[:200]
