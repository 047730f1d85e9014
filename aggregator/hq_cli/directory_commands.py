"""`callmesh hq directory ...`: read and change the company directory, and see where each
site's routing stands.

Changes go through the per-entry routes of the API (``PUT``/``DELETE
/api/v1/directory/{kind}/{id}``, ``PUT /api/v1/directory/plan``), where an entry is
validated alone (a problem names its field) and then as part of the whole directory (a
problem names its entries); a saved change is published to the sites.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from aggregator.hq_cli.directory_fields import changed_entry, new_entry, plan_body
from aggregator.hq_cli.errors import EXIT_USAGE, HqCliError
from aggregator.hq_cli.output import Result
from aggregator.hq_cli.paths import segment

if TYPE_CHECKING:
    from aggregator.hq_cli.client import HqClient

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Leaf = Callable[..., Any]

DIRECTORY = "/api/v1/directory"
KINDS = ("sites", "trunks", "rules")
FIELDS_HELP = (
    "FIELD=VALUE: a field of the entry (as the API names it); a VALUE that starts with "
    "[ or { is JSON, any other is text (numbers and true/false are read as the field needs)"
)


def add(commands: Sub, leaf: Leaf) -> None:
    """Register `directory` under `callmesh hq`."""
    group = commands.add_parser("directory", help="the company directory: read and change")
    sub = group.add_subparsers(dest="directory_command", metavar="ACTION", required=True)
    listing = leaf(sub, "list", _list, "list the directory's sites, trunks or rules")
    listing.add_argument("kind", choices=KINDS)
    show = leaf(sub, "show", _show, "one site, trunk or rule")
    show.add_argument("kind", choices=KINDS)
    show.add_argument("entry_id")
    leaf(sub, "snapshots", _snapshots, "routing table version per site: at HQ, applied, refused")
    _writes(sub, leaf)


def _writes(sub: Sub, leaf: Leaf) -> None:
    made = leaf(sub, "add", _add, "add a site, trunk or rule (admin)", False)
    _entry_arguments(made)
    change = leaf(sub, "change", _change, "change fields of a site, trunk or rule (admin)", False)
    _entry_arguments(change)
    change.add_argument(
        "--unset", action="append", default=[], metavar="FIELD", help="back to its default"
    )
    remove = leaf(sub, "remove", _remove, "remove a site, trunk or rule (admin)", False)
    remove.add_argument("kind", choices=KINDS)
    remove.add_argument("entry_id")
    plan = leaf(sub, "plan", _plan, "show or change the numbering plan (admin changes)", False)
    dialling = plan.add_mutually_exclusive_group()
    dialling.add_argument(
        "--flat", dest="flat", action="store_true", default=None, help="extensions unique"
    )
    dialling.add_argument(
        "--site-codes",
        dest="flat",
        action="store_false",
        help="other sites dialled as prefix + site code + extension",
    )
    plan.add_argument("--site-prefix", help="0 to 2 digits dialled before a site code")


def _entry_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("entry_id")
    parser.add_argument("fields", nargs="*", metavar="FIELD=VALUE", help=FIELDS_HELP)
    parser.add_argument(
        "--file", metavar="FILE", help="the entry's fields as YAML or JSON (- for stdin)"
    )


def _list(client: HqClient, args: argparse.Namespace) -> Result:
    found = client.get(f"{DIRECTORY}/{args.kind}")
    rows = found[args.kind]
    notes = [f"directory revision {found['revision']}"]
    return Result(rows, (), sheet=args.kind, notes=notes)


def _show(client: HqClient, args: argparse.Namespace) -> Result:
    found = client.get(_entry_path(args))
    return Result([found], (), raw=found, sheet=args.kind)


def _snapshots(client: HqClient, args: argparse.Namespace) -> Result:
    rows = client.get(f"{DIRECTORY}/snapshots")["snapshots"]
    return Result(rows, (), sheet="snapshots")


def _add(client: HqClient, args: argparse.Namespace) -> str:
    entry = new_entry(args.entry_id, args.fields, args.file, sys.stdin)
    listed = client.get(f"{DIRECTORY}/{args.kind}")[args.kind]
    if any(e.get("id") == args.entry_id for e in listed):
        raise HqCliError(
            "entry-exists",
            f"{_one(args.kind)} {args.entry_id!r} is already in the directory",
            EXIT_USAGE,
            hint=f"change it with `callmesh hq directory change {args.kind} {args.entry_id}`",
        )
    return _saved(client.call("PUT", _entry_path(args), body=entry), f"added {_name(args)}")


def _change(client: HqClient, args: argparse.Namespace) -> str:
    current = client.get(_entry_path(args))
    entry = changed_entry(current, args.fields, args.file, args.unset, sys.stdin)
    return _saved(client.call("PUT", _entry_path(args), body=entry), f"changed {_name(args)}")


def _remove(client: HqClient, args: argparse.Namespace) -> str:
    return _saved(client.call("DELETE", _entry_path(args)), f"removed {_name(args)}")


def _plan(client: HqClient, args: argparse.Namespace) -> str:
    current = client.get(DIRECTORY)["directory"]["plan"]
    body = plan_body(current, args.flat, args.site_prefix)
    if body == current:
        return f"numbering plan: {_plan_text(current)}"
    saved = _saved(client.call("PUT", f"{DIRECTORY}/plan", body=body), "changed the numbering plan")
    return f"{saved}\nnumbering plan: {_plan_text(body)}"


def _saved(answer: dict[str, Any], done: str) -> str:
    published = answer["published"]
    sites = ", ".join(f"{site} v{version}" for site, version in sorted(published.items()))
    tables = f"new routing tables: {sites}" if sites else "no site's routing table changed"
    return f"{done} (directory revision {answer['revision']}; {tables})"


def _plan_text(plan: dict[str, Any]) -> str:
    if plan["flat"]:
        return "flat (extensions are unique company-wide)"
    return f"site codes (other sites dialled as {plan['site_prefix']}<code><extension>)"


def _entry_path(args: argparse.Namespace) -> str:
    return f"{DIRECTORY}/{args.kind}/{segment(args.entry_id)}"


def _name(args: argparse.Namespace) -> str:
    return f"{_one(args.kind)} {args.entry_id}"


def _one(kind: str) -> str:
    return kind.removesuffix("s")
