"""The `callmesh` command: one entry point, one sub-command module per area.

Each sub-command module exposes ``add_parser(subparsers)``; the parser it adds sets
``func`` to a callable taking the parsed namespace and returning the process exit code.
Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.

The appliance's own commands are listed here; other packages contribute theirs through
the ``callmesh.commands`` entry-point group (HQ's ``aggregator`` command lives in
``aggregator/cli.py``), so the appliance never imports the aggregator.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from appliance.cli import (
    appliance_cmd,
    demo_cmd,
    doctor_cmd,
    enrol_cmd,
    flash_cmd,
    keys_cmd,
    modem_cmd,
    pms_simulator_cmd,
    provision_cmd,
    upgrade_cmd,
)
from drivers.daemon.version import __version__

SubcommandModule = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

COMMAND_GROUP = "callmesh.commands"

_MODULES: tuple[SubcommandModule, ...] = (
    appliance_cmd.add_parser,
    demo_cmd.add_parser,
    modem_cmd.add_parser,
    keys_cmd.add_parser,
    doctor_cmd.add_parser,
    enrol_cmd.add_parser,
    provision_cmd.add_parser,
    flash_cmd.add_parser,
    pms_simulator_cmd.add_parser,
    upgrade_cmd.add_parser,
)


def _registered() -> list[SubcommandModule]:
    """``add_parser`` of every command other installed packages register, by name."""
    found = sorted(entry_points(group=COMMAND_GROUP), key=lambda point: point.name)
    return [point.load() for point in found]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="callmesh",
        description="callmesh: edge telephony appliances and their central aggregator.",
    )
    parser.add_argument("--version", action="version", version=f"callmesh {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (*_MODULES, *_registered()):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen sub-command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
