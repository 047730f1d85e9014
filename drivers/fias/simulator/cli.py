"""``callmesh pms-simulator`` (also ``python -m drivers.fias.simulator``): run until a signal."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from drivers.daemon.control_http import serve_until_signalled
from drivers.fias.simulator.control import ControlServer
from drivers.fias.simulator.core import PmsCore
from drivers.fias.simulator.server import PmsSimulator

DESCRIPTION = "Run a simulated hotel PMS (a FIAS IFC server) with an HTTP control."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the simulator command."""
    parser.add_argument("--port", type=int, default=0, help="FIAS TCP port (default: any free)")
    parser.add_argument(
        "--control-port", type=int, default=0, help="HTTP control port (default: any free)"
    )
    parser.add_argument(
        "--rooms", default="", metavar="LIST", help="rooms, e.g. 101-110,0330 (kept as written)"
    )
    parser.add_argument("--json", metavar="FILE", help="write the ports and control URL as JSON")


def parse_rooms(text: str) -> list[str]:
    """``101-103,0330`` -> ``['101', '102', '103', '0330']`` (ranges keep their width)."""
    rooms: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        if not last:
            rooms.append(first)
            continue
        if not (first.isdigit() and last.isdigit()) or int(last) < int(first):
            raise ValueError(f"room range {part!r}: FIRST-LAST with FIRST <= LAST")
        rooms += [str(n).zfill(len(first)) for n in range(int(first), int(last) + 1)]
    return rooms


def run(args: argparse.Namespace) -> int:
    """Start the simulator and its control, print where they are, wait for SIGINT/SIGTERM."""
    try:
        rooms = parse_rooms(args.rooms)
    except ValueError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    simulator = PmsSimulator(PmsCore(rooms={room: [] for room in rooms}), port=args.port)
    simulator.start()
    control = ControlServer(simulator, args.control_port)
    control.start()
    serve_until_signalled(
        lambda: _announce(simulator.port, control.url, args.json), simulator, control
    )
    return 0


def _announce(port: int, url: str, json_path: str | None) -> None:
    if json_path:
        # Written whole, then renamed: whoever waits for the file never reads half of it.
        target = Path(json_path)
        partial = target.with_name(target.name + ".part")
        partial.write_text(json.dumps({"fias_port": port, "control": url}))
        partial.replace(target)
    sys.stdout.write(f"fias: 127.0.0.1:{port}\ncontrol: {url}\nrunning; Ctrl-C to stop\n")
    sys.stdout.flush()
