"""`callmesh doctor`: check that this machine can run callmesh, and why not."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh doctor`."""
    parser = sub.add_parser(
        "doctor",
        help="check software, system tools, config and data directory",
        description="Check the Python version, the Python packages callmesh needs, the system "
        "tools (Kamailio, rtpengine, sipp, tshark) and, with --config, the appliance "
        "configuration and its data directory. Exit 1 if a required check fails.",
    )
    parser.add_argument("--config", "-c", type=Path, metavar="FILE", help="appliance config")
    parser.add_argument("--json", action="store_true", help="print findings as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from appliance.doctor import run_checks

    findings = run_checks(args.config)
    if args.json:
        print(json.dumps([f.as_dict() for f in findings], indent=2))
    else:
        for f in findings:
            mark = "ok  " if f.ok else ("FAIL" if f.required else "warn")
            print(f"[{mark}] {f.check:<26} {f.detail}")
    return 0 if all(f.ok for f in findings if f.required) else 1
