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
    _add_retention(actions)
    hq_commands.add_parser(sub)


def _add_retention(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    retention = actions.add_parser(
        "retention",
        help="drop the CDRs of old months (PostgreSQL partitions) and exit",
        description="Drop the monthly CDR partitions older than the current month and the "
        "N months before it. The hourly and daily rollups stay, so summaries and the per "
        "site, trunk and extension reports still cover the dropped months; CDR search and "
        "CSV export no longer find their calls. PostgreSQL only (exit 2 on SQLite). "
        "See docs/scale.md.",
    )
    add_config_arguments(retention)
    retention.add_argument(
        "--keep-months", type=_months, required=True, metavar="N", help="full months kept"
    )
    retention.set_defaults(func=_retention)


def _months(text: str) -> int:
    value = int(text) if text.isdigit() else -1
    if value < 1:
        raise argparse.ArgumentTypeError("a whole number of months, at least 1")
    return value


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


def _retention(args: argparse.Namespace) -> int:
    from aggregator.settings import AggregatorSettings
    from aggregator.store.db import DatabaseError, create_engine
    from aggregator.store.partitions import drop_old_months

    settings = load_or_report(AggregatorSettings, args)
    if settings is None:
        return EXIT_USAGE
    try:
        engine = create_engine(settings.database_url())
    except DatabaseError as err:
        print(f"callmesh: {err}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        if engine.dialect.name != "postgresql":
            print("callmesh: retention drops PostgreSQL partitions; SQLite keeps every CDR",
                  file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
        first_kept, dropped = drop_old_months(engine, args.keep_months)
    finally:
        engine.dispose()
    for name in dropped:
        print(f"dropped {name}")
    print(f"kept CDRs from {first_kept.year:04d}-{first_kept.month:02d} on")
    return EXIT_OK
