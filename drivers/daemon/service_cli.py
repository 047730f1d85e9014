"""Shared plumbing for `callmesh appliance` and `callmesh aggregator`: config and run."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from drivers.daemon.config_layers import ConfigError, collect_layers, load_settings
from drivers.daemon.http import BindError
from drivers.daemon.logs import configure_logging
from drivers.daemon.redaction import redact
from drivers.daemon.settings_base import ServiceSettings

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("callmesh")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --conf-d and --set, the same for every service."""
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        required=True,
        metavar="FILE",
        help="main YAML config file; drop-ins are read from conf.d/ beside it",
    )
    parser.add_argument(
        "--conf-d",
        type=Path,
        metavar="DIR",
        help="directory of *.yaml drop-ins (default: conf.d beside --config)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set http.port=8081 (repeatable; wins over files)",
    )


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    """--log-json and --log-level."""
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="override log.level from the config",
    )


def load_or_report(model: type[SettingsT], args: argparse.Namespace) -> SettingsT | None:
    """Validated settings, or None after printing each problem on one line."""
    try:
        layers = collect_layers(args.config, args.conf_d, args.overrides)
        return load_settings(model, layers)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return None


def run_service(
    model: type[SettingsT],
    runner: Callable[[SettingsT], Coroutine[Any, Any, None]],
    args: argparse.Namespace,
    expected: tuple[type[Exception], ...] = (),
    config_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Load config, set up logging and run a service; expected failures exit with one line.

    ``config_errors`` are configuration problems found only when the service is built
    (exit 2, like any other config error); ``expected`` are runtime failures (exit 1).
    """
    settings = load_or_report(model, args)
    if settings is None:
        return EXIT_USAGE
    configure_logging(
        args.log_level or settings.log.level, args.log_json or settings.log.format == "json"
    )
    failures: tuple[type[Exception], ...] = (BindError, *expected)
    try:
        asyncio.run(runner(settings))
    except config_errors as err:
        print(f"config error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except failures as err:
        print(f"callmesh: {err}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def show_config(model: type[SettingsT], args: argparse.Namespace) -> int:
    """Print the effective, validated configuration as JSON, secrets hidden unless asked."""
    settings = load_or_report(model, args)
    if settings is None:
        return EXIT_USAGE
    doc = settings.model_dump(mode="json")
    print(json.dumps(doc if args.show_secrets else redact(doc), indent=2))
    return EXIT_OK


def add_service_actions(
    parser: argparse.ArgumentParser,
    what: str,
    run: Callable[[argparse.Namespace], int],
    config: Callable[[argparse.Namespace], int],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The `run` and `config` actions every service command has; returns the actions."""
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run_parser = commands.add_parser(
        "run",
        help=f"start the {what} and serve until SIGTERM/SIGINT",
        description=f"Start the {what}, serve /healthz and /metrics, run until SIGTERM or "
        "SIGINT, then shut down in reverse start-up order.",
    )
    add_config_arguments(run_parser)
    add_log_arguments(run_parser)
    run_parser.set_defaults(func=run)
    check = commands.add_parser(
        "config",
        help="validate the configuration and print the effective settings",
        description="Merge defaults, the file, conf.d drop-ins and --set overrides, validate "
        "them and print the result as JSON, with tokens, passwords, secrets and PINs shown "
        "as <redacted>. Exit 2 with one line per problem if invalid.",
    )
    add_config_arguments(check)
    check.add_argument(
        "--show-secrets", action="store_true", help="print tokens, passwords and keys as they are"
    )
    check.set_defaults(func=config)
    return commands
