"""`callmesh modem ...`: field-technician tools for GSM/LTE modems."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh modem`."""
    parser = sub.add_parser("modem", help="inspect and simulate GSM/LTE modems")

    def show_help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=show_help)
