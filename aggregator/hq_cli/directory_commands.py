"""`callmesh hq directory ...`: read the company directory and where each site's routing stands.

Changes to the directory stay with the console and the API (``PUT /api/v1/directory...``),
where an entry is validated alone and as part of the whole directory.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from aggregator.hq_cli.output import Result
from aggregator.hq_cli.paths import segment

if TYPE_CHECKING:
    from aggregator.hq_cli.client import HqClient

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Leaf = Callable[..., Any]

DIRECTORY = "/api/v1/directory"
KINDS = ("sites", "trunks", "rules")


def add(commands: Sub, leaf: Leaf) -> None:
    """Register `directory` under `callmesh hq`."""
    group = commands.add_parser("directory", help="the company directory (read only)")
    sub = group.add_subparsers(dest="directory_command", metavar="ACTION", required=True)
    listing = leaf(sub, "list", _list, "list the directory's sites, trunks or rules")
    listing.add_argument("kind", choices=KINDS)
    show = leaf(sub, "show", _show, "one site, trunk or rule")
    show.add_argument("kind", choices=KINDS)
    show.add_argument("entry_id")
    leaf(sub, "snapshots", _snapshots, "routing table version per site: at HQ, applied, refused")


def _list(client: HqClient, args: argparse.Namespace) -> Result:
    found = client.get(f"{DIRECTORY}/{args.kind}")
    rows = found[args.kind]
    notes = [f"directory revision {found['revision']}"]
    return Result(rows, (), sheet=args.kind, notes=notes)


def _show(client: HqClient, args: argparse.Namespace) -> Result:
    found = client.get(f"{DIRECTORY}/{args.kind}/{segment(args.entry_id)}")
    return Result([found], (), raw=found, sheet=args.kind)


def _snapshots(client: HqClient, args: argparse.Namespace) -> Result:
    rows = client.get(f"{DIRECTORY}/snapshots")["snapshots"]
    return Result(rows, (), sheet="snapshots")
