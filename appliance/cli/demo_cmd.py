"""`callmesh demo`: bring up (or stop) the demo deployment on loopback."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(os.environ.get("CALLMESH_DEMO_DIR", ".callmesh-demo"))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh demo`."""
    parser = sub.add_parser(
        "demo",
        help="start the demo deployment (HQ, branches, SIM gateway, hotel) on loopback",
        description="Start an aggregator, two branch appliances, simulated modems, a "
        "SIM-gateway appliance, a simulated hotel PMS and a hotel appliance on 127.0.0.1 "
        "(every PBX's SIP and RTP on --public-ip), "
        "each with its own data directory under DIR; wait until all are healthy, print what "
        "runs where and write DIR/manifest.json (addresses, ports, API tokens, SIP "
        "credentials, the hotel's rooms and the PMS simulator's control URL, data "
        "directories, PIDs). An earlier demo in DIR is stopped first.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        metavar="DIR",
        help=f"demo folder (default: $CALLMESH_DEMO_DIR or {DEFAULT_DIR})",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--stop", action="store_true", help="stop the demo running in DIR")
    action.add_argument(
        "--status", action="store_true", help="print the manifest of the demo running in DIR"
    )
    parser.add_argument(
        "--public-ip",
        default="127.0.0.1",
        metavar="ADDR",
        help="IPv4 address of this machine where phones reach every PBX's SIP and RTP, e.g. "
        "a VM's private-network address (default 127.0.0.1); APIs stay on 127.0.0.1",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for each service to become healthy (default 60)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from appliance.demo import deployment

    if args.stop:
        stopped = deployment.stop(args.dir)
        print(f"stopped: {', '.join(stopped)}" if stopped else f"no demo running in {args.dir}")
        return 0
    if args.status:
        manifest = deployment.read_manifest(args.dir.resolve())
        if manifest is None:
            print(f"no demo running in {args.dir}", file=sys.stderr)
            return 1
        print(json.dumps(manifest, indent=2))
        return 0
    try:
        manifest = deployment.start(args.dir, timeout=args.timeout, public_ip=args.public_ip)
    except (deployment.DemoError, OSError) as err:
        print(f"callmesh demo: {err}", file=sys.stderr)
        return 1
    _print_summary(manifest)
    return 0


def _print_summary(manifest: dict[str, Any]) -> None:
    print(f"callmesh demo is running in {manifest['demo_dir']}\n")
    print(f"{'service':<11} {'pid':>7}  {'http':<24} data")
    for name, svc in manifest["services"].items():
        http = svc.get("http") or svc.get("control") or "-"
        print(f"{name:<11} {svc['pid']:>7}  {http:<24} {svc['data_dir']}")
    for name, svc in manifest["services"].items():
        for token in svc.get("api_tokens", []):
            print(f"\n{name} API token ({token['role']}): {token['token']}")
        if "sip" in svc:
            print(f"{name} SIP (UDP) for phones: {svc['sip']['address']}")
        for ext in svc.get("sip", {}).get("extensions", []):
            print(f"{name} SIP extension {ext['number']} password {ext['password']}")
        if "hotel" in svc:
            _print_hotel(name, svc["hotel"])
    print(f"\nmanifest: {manifest['demo_dir']}/manifest.json")
    print("stop it with: callmesh demo --stop")


def _print_hotel(name: str, hotel: dict[str, Any]) -> None:
    rooms = ", ".join(f"{r['room']} = {r['extension']}" for r in hotel["rooms"])
    print(f"{name} rooms {rooms}; front desk {hotel['front_desk']}")
    print(f"{name} PMS simulator control: {hotel['pms_control']} (docs/hotel.md)")
