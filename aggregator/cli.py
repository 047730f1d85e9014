"""`callmesh aggregator ...`: run the HQ aggregator or check its configuration."""

from __future__ import annotations

import argparse

from drivers.daemon.service_cli import add_service_actions, run_service, show_config


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh aggregator`."""
    parser = sub.add_parser(
        "aggregator",
        help="run the HQ aggregator",
        description="Run the central aggregator or check its configuration.",
    )
    add_service_actions(parser, "aggregator", _run, _config)


def _run(args: argparse.Namespace) -> int:
    from aggregator import service
    from aggregator.ingest import IngestError
    from aggregator.settings import AggregatorSettings

    expected = (service.DatabaseError, IngestError)
    return run_service(AggregatorSettings, service.run, args, expected=expected)


def _config(args: argparse.Namespace) -> int:
    from aggregator.settings import AggregatorSettings

    return show_config(AggregatorSettings, args)
