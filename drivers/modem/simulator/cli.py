"""``callmesh modem simulate`` (or ``python -m drivers.modem.simulator``): run until a signal."""

from __future__ import annotations

import argparse
import sys

from drivers.daemon.control_http import serve_until_signalled
from drivers.modem.simulator.api import ModemSimulator
from drivers.modem.simulator.control import ControlServer
from drivers.modem.simulator.dialects import DIALECTS
from drivers.modem.simulator.state import DEFAULT_RATES, SimulatorConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the simulate command."""
    parser.add_argument(
        "--profile",
        default="quectel-ec25",
        choices=sorted(DIALECTS),
        help="modem model to imitate (default: quectel-ec25)",
    )
    parser.add_argument("--count", type=int, default=1, help="number of modems (default 1)")
    parser.add_argument("--sims", type=int, default=1, choices=(1, 2), help="SIM slots per modem")
    parser.add_argument("--seed", type=int, default=0, help="seed for identities and faults")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME[=RATE]",
        help=f"inject a fault: {', '.join(DEFAULT_RATES)}",
    )
    parser.add_argument("--json", metavar="FILE", help="write ports and control URL as JSON")
    parser.add_argument("--dir", help="directory for the by-id links (default: a temp dir)")
    parser.add_argument(
        "--control-port",
        type=int,
        default=0,
        help="HTTP control port on 127.0.0.1 (default: any free port)",
    )
    parser.add_argument(
        "--reset-seconds",
        type=float,
        default=11.0,
        help="time off USB after AT+CFUN=1,1 (real EC25: about 11 s)",
    )
    parser.add_argument(
        "--boot-seconds", type=float, default=1.0, help="time before AT answers after power-on"
    )


def config_from(args: argparse.Namespace) -> SimulatorConfig:
    """Simulator config from parsed options; raises ValueError for bad values."""
    config = SimulatorConfig(
        profile=args.profile,
        count=args.count,
        sims=args.sims,
        seed=args.seed,
        faults=tuple(args.fault),
        directory=args.dir,
        boot_seconds=args.boot_seconds,
        sim_ready_seconds=2.0,
        register_seconds=2.0,
        reset_seconds=args.reset_seconds,
    )
    config.validate()
    return config


def run(args: argparse.Namespace) -> int:
    """Start the simulator, print the ports, wait for a signal, shut down."""
    try:
        config = config_from(args)
    except ValueError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    simulator = ModemSimulator(config)
    simulator.start()
    control = ControlServer(simulator, args.control_port)
    control.start()
    serve_until_signalled(lambda: _announce(simulator, control.url, args.json), simulator, control)
    return 0


def _announce(simulator: ModemSimulator, url: str, json_path: str | None) -> None:
    lines = [f"control: {url}"]
    lines += [
        f"modem {m['index']} {m['profile']} imei {m['imei']}: at {m['at']} voice {m['voice']}"
        f" (by-id {m['at_by_id']})"
        for m in simulator.info()
    ]
    if json_path:
        simulator.write_json(json_path, control=url)
    sys.stdout.write("\n".join([*lines, "running; Ctrl-C to stop"]) + "\n")
    sys.stdout.flush()
