"""HQ's commands: `callmesh aggregator ...` (run the aggregator, check its configuration,
migrate its store) and `callmesh hq ...` (the HQ command line, a client of its API:
docs/hq-cli.md).

Both are registered through the one ``callmesh.commands`` entry point HQ installs.
"""

from __future__ import annotations

import argparse
import sys

from aggregator.hq_cli import commands as hq_commands
from drivers.daemon.service_cli import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    add_config_arguments,
    add_service_actions,
    load_or_report,
    run_service,
    show_config,
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh aggregator` and `callmesh hq`."""
    parser = sub.add_parser(
        "aggregator",
        help="run the HQ aggregator",
        description="Run the central aggregator or check its configuration.",
    )
    actions = add_service_actions(parser, "aggregator", _run, _config)
    migrate = actions.add_parser(
        "migrate",
        help="bring the database schema to this release's and exit",
        description="Upgrade the configured database (SQLite or PostgreSQL) to the schema "
        "this release uses, keeping its data, and print the revision before and after. "
        "`run` does the same at start-up; this lets an upgrade be done, and checked, "
        "before the service starts. Exit 1 if the database cannot be reached or was "
        "written by a newer release.",
    )
    add_config_arguments(migrate)
    migrate.set_defaults(func=_migrate)
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


def _migrate(args: argparse.Namespace) -> int:
    from aggregator.settings import AggregatorSettings
    from aggregator.store.db import DatabaseError, migrated_engine

    settings = load_or_report(AggregatorSettings, args)
    if settings is None:
        return EXIT_USAGE
    try:
        engine, migration = migrated_engine(settings.database_url())
    except DatabaseError as err:
        print(f"callmesh: {err}", file=sys.stderr)
        return EXIT_FAILURE
    engine.dispose()
    if migration.before is None:
        print(f"database schema created at revision {migration.after}")
    elif migration.changed:
        print(f"database schema upgraded from revision {migration.before} to {migration.after}")
    else:
        print(f"database schema already at revision {migration.after}")
    return EXIT_OK
