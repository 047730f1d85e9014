"""`callmesh pms-simulator`: a simulated hotel PMS for tests, demos and field checks."""

from __future__ import annotations

import argparse

from drivers.fias.simulator import cli as sim_cli


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh pms-simulator`."""
    parser = sub.add_parser(
        "pms-simulator", help="run a simulated hotel PMS (FIAS)", description=sim_cli.DESCRIPTION
    )
    sim_cli.add_arguments(parser)
    parser.set_defaults(func=sim_cli.run)
