"""HQ's commands: `callmesh aggregator ...` (run the aggregator or check its configuration)
and `callmesh hq ...` (the HQ command line, a client of its API: docs/hq-cli.md).

Both are registered through the one ``callmesh.commands`` entry point HQ installs.
"""

from __future__ import annotations

import argparse

from aggregator.hq_cli import commands as hq_commands
from drivers.daemon.service_cli import add_service_actions, run_service, show_config


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh aggregator` and `callmesh hq`."""
    parser = sub.add_parser(
        "aggregator",
        help="run the HQ aggregator",
        description="Run the central aggregator or check its configuration.",
    )
    add_service_actions(parser, "aggregator", _run, _config)
    hq_commands.add_parser(sub)


def _run(args: argparse.Namespace) -> int:
    from aggregator import service
    from aggregator.ingest import IngestError
    from aggregator.settings import AggregatorSettings

    expected = (service.DatabaseError, IngestError)
    return run_service(AggregatorSettings, service.run, args, expected=expected)


def _config(args: argparse.Namespace) -> int:
    from aggregator.settings import AggregatorSettings

    return show_config(AggregatorSettings, args)
