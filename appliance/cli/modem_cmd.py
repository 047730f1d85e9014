"""`callmesh modem ...`: field-technician tools for GSM/LTE modems, and the modem simulator.

Errors print one line (no traceback) and exit 1: no such port, port busy, not a modem, SIM PIN
locked, no network. Usage errors exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from drivers.modem import tools
from drivers.modem.errors import ModemError, SimPinRequired
from drivers.modem.simulator import cli as sim_cli

Handler = Callable[[argparse.Namespace], int]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh modem`."""
    parser = sub.add_parser(
        "modem",
        help="inspect and simulate GSM/LTE modems",
        description="Inspect, test and simulate GSM/LTE modems.",
    )
    parser.set_defaults(func=_usage(parser))
    commands = parser.add_subparsers(dest="modem_command", metavar="ACTION")

    scan = _leaf(commands, "scan", "list serial ports and probe each for a modem", _scan)
    scan.add_argument(
        "--ports",
        action="append",
        metavar="GLOB",
        help="ports to probe (default: by-id links, ttyUSB*, ttyACM*)",
    )
    scan.add_argument("--json", action="store_true", help="print JSON")

    probe = _leaf(
        commands, "probe", "show identity, SIM, registration and signal of one modem", _probe
    )
    probe.add_argument("port", help="AT port, e.g. /dev/serial/by-id/...-if02-port0")
    probe.add_argument("--profile", help="force a modem profile instead of auto-detection")
    probe.add_argument("--json", action="store_true", help="print JSON")

    at = _leaf(commands, "at", "send raw AT commands and show answers and URCs", _at)
    at.add_argument("port", help="AT port")
    at.add_argument("commands", nargs="+", metavar="COMMAND", help="e.g. AT+CSQ")
    at.add_argument(
        "--listen",
        type=float,
        default=1.0,
        help="seconds to keep showing URCs after the last answer",
    )

    sms = _leaf(commands, "sms", "SMS tools (see: sms send --help)", _no_action)
    sms_commands = sms.add_subparsers(dest="sms_command", metavar="ACTION")
    send = _leaf(sms_commands, "send", "send one SMS (PDU mode, multipart when long)", _sms_send)
    send.add_argument("port", help="AT port")
    send.add_argument("number", help="destination, e.g. +15551234567")
    send.add_argument("text", help="message text")

    dial = _leaf(commands, "dial", "place a test call, hold it, hang up", _dial)
    dial.add_argument("port", help="AT port")
    dial.add_argument("number", help="number to call")
    dial.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help="how long to hold the call once answered (default 5)",
    )

    simulate = _leaf(
        commands,
        "simulate",
        "run simulated modems on ptys until SIGINT/SIGTERM (control over HTTP)",
        sim_cli.run,
    )
    sim_cli.add_arguments(simulate)


def _usage(parser: argparse.ArgumentParser) -> Handler:
    def show(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def _no_action(_args: argparse.Namespace) -> int:
    print("error: choose an action; see --help")
    return 2


def _leaf(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    text: str,
    func: Handler,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
    parser.set_defaults(func=func)
    return parser


def _run(coro: Coroutine[Any, Any, int]) -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(message)s")
    try:
        return asyncio.run(coro)
    except SimPinRequired as err:
        print(f"error: SIM PIN locked: {err.text}; unlock the SIM (AT+CPIN) or check the PIN")
    except ModemError as err:
        print(f"error: {err}")
    return 1


def _scan(args: argparse.Namespace) -> int:
    async def go() -> int:
        patterns = tuple(args.ports) if args.ports else tools.DEFAULT_PORTS
        results = await tools.scan(patterns)
        if args.json:
            print(json.dumps(results, indent=2))
        else:
            _print_scan(results)
        return 0 if any("error" not in r for r in results) else 1

    return _run(go())


def _print_scan(results: list[dict[str, Any]]) -> None:
    if not results:
        print("no serial ports found")
    for result in results:
        if "error" in result:
            print(f"{result['port']}: {result['error']}")
        else:
            _print_probe(result)


def _print_probe(result: dict[str, Any]) -> None:
    ident, sim, net = result["identity"] or {}, result["sim"], result["network"]
    dbm = f"{net['signal_dbm']} dBm" if net["signal_dbm"] is not None else "unknown"
    print(
        f"{result['port']}: {ident.get('manufacturer')} {ident.get('model')} "
        f"fw {ident.get('firmware')} imei {ident.get('imei')} [{result['profile']}]"
    )
    print(
        f"  SIM {sim.get('pin_state')} iccid {sim.get('iccid', '')} imsi {sim.get('imsi', '')}"
        f" number {sim.get('number') or '-'}"
    )
    state = "registered" if net["registered"] else f"not registered (stat {net['stat']})"
    print(f"  network {state} {net['technology']} {net['operator']} signal {dbm}")


def _probe(args: argparse.Namespace) -> int:
    async def go() -> int:
        result = await tools.probe(args.port, args.profile)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            _print_probe(result)
        return 0

    return _run(go())


def _at(args: argparse.Namespace) -> int:
    async def go() -> int:
        ok = await tools.raw_at(args.port, args.commands, args.listen, print)
        return 0 if ok else 1

    return _run(go())


def _sms_send(args: argparse.Namespace) -> int:
    async def go() -> int:
        refs = await tools.send_sms(args.port, args.number, args.text)
        print(f"sent {len(refs)} part(s), reference(s) {', '.join(map(str, refs))}")
        return 0

    return _run(go())


def _dial(args: argparse.Namespace) -> int:
    async def go() -> int:
        event = await tools.test_call(args.port, args.number, args.seconds, print)
        if event is None:
            return 1
        print(f"call ended after {event.duration or 0:.1f} s connected")
        return 0

    return _run(go())
