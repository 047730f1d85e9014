"""`callmesh hq sims ...` and `callmesh hq dnc ...`: the SIM fleet, its actions, the DNC list.

A SIM action becomes a command for the SIM's site (``/api/v1/fleet``); ``--wait SECONDS``
polls it until the site applied or refused it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from aggregator.hq_cli.errors import EXIT_FAILURE, EXIT_USAGE, HqCliError
from aggregator.hq_cli.output import Result
from aggregator.hq_cli.paths import segment

if TYPE_CHECKING:
    from aggregator.hq_cli.client import HqClient

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Leaf = Callable[..., Any]

FLEET = "/api/v1/fleet"
POLL_S = 0.5
SIM_COLUMNS = (
    "iccid",
    "site_id",
    "channel",
    "slot",
    "number",
    "operator",
    "status",
    "signal_dbm",
    "group",
    "needs_review",
)
LIMIT_FLAGS = {
    "calls_per_day": int,
    "minutes_per_day": float,
    "minutes_per_month": float,
    "max_call_s": int,
}
SIMPLE_ACTIONS = {
    "disable": "take a SIM out of use",
    "enable": "put a disabled SIM back in use",
    "retire": "retire a SIM for good",
    "clear-review": "clear a SIM's review flag after a person looked at it",
}


def add(commands: Sub, leaf: Leaf) -> None:
    """Register `sims` and `dnc` under `callmesh hq`."""
    _sims(commands, leaf)
    _dnc(commands, leaf)


def _sims(commands: Sub, leaf: Leaf) -> None:
    group = commands.add_parser("sims", help="the SIM fleet and its actions")
    sub = group.add_subparsers(dest="sims_command", metavar="ACTION", required=True)
    listing = leaf(sub, "list", _list_sims, "list SIMs with site, slot, status, signal")
    listing.add_argument("--site", help="only this site")
    leaf(sub, "show", _show_sim, "one SIM with usage and limits").add_argument("iccid")
    limits = _action(sub, leaf, "limits", "set a SIM's limits (those given)")
    for name, kind in LIMIT_FLAGS.items():
        flag = "--" + name.replace("_", "-")
        limits.add_argument(flag, type=kind, dest=name, help=f"{name} (a number)")
    _action(sub, leaf, "slot", "select a slot on the SIM's modem").add_argument("slot", type=int)
    _action(sub, leaf, "group", "move a SIM to another group").add_argument("group")
    for name, help in SIMPLE_ACTIONS.items():
        _action(sub, leaf, name, help)
    command = leaf(sub, "command", _show_command, "whether a site applied a command", False)
    command.add_argument("command_id")


def _action(sub: Sub, leaf: Leaf, name: str, help: str) -> Any:
    parser = leaf(sub, name, _act, help, False)
    parser.add_argument("iccid")
    parser.add_argument(
        "--wait", type=float, default=0, metavar="SECONDS", help="wait until the site applied it"
    )
    parser.set_defaults(sim_action=name)
    return parser


def _list_sims(client: HqClient, args: argparse.Namespace) -> Result:
    rows = client.get(f"{FLEET}/sims", site=args.site)["sims"]
    return Result(rows, SIM_COLUMNS, sheet="sims")


def _show_sim(client: HqClient, args: argparse.Namespace) -> Result:
    found = client.get(f"{FLEET}/sims/{segment(args.iccid)}")
    return Result([found], (), raw=found, sheet="sim")


def _act(client: HqClient, args: argparse.Namespace) -> str:
    path = f"{FLEET}/sims/{segment(args.iccid)}"
    name = args.sim_action
    if name == "limits":
        body = {k: getattr(args, k) for k in LIMIT_FLAGS if getattr(args, k) is not None}
        if not body:
            raise HqCliError("no-limits", "give at least one limit", EXIT_USAGE, hint="see --help")
        sent = client.call("PUT", f"{path}/limits", body=body)
    elif name == "group":
        sent = client.call("PUT", f"{path}/group", body={"group": args.group})
    elif name == "slot":
        sent = client.call("POST", f"{path}/select-slot", body={"slot": args.slot})
    else:
        sent = client.call("POST", f"{path}/{name}")
    state = _wait(client, sent["command_id"], args.wait) if args.wait > 0 else "pending"
    return f"{sent['kind']} for {args.iccid} at {sent['site_id']}: {state} ({sent['command_id']})"


def _wait(client: HqClient, command_id: str, seconds: float) -> str:
    """Poll the command until it is no longer pending; refuse one still pending at the end."""
    deadline = time.monotonic() + seconds
    while True:
        found = client.get(f"{FLEET}/commands/{segment(command_id)}")
        if found["state"] == "failed":
            raise HqCliError("command-failed", f"the site refused it: {found['detail']}")
        if found["state"] != "pending":
            return str(found["state"])
        if time.monotonic() >= deadline:
            raise HqCliError(
                "command-pending",
                f"the site has not applied {command_id} within {seconds:g}s",
                EXIT_FAILURE,
                hint=f"it stays queued; check with: callmesh hq sims command {command_id}",
            )
        time.sleep(POLL_S)


def _show_command(client: HqClient, args: argparse.Namespace) -> str:
    found = client.get(f"{FLEET}/commands/{segment(args.command_id)}")
    detail = f": {found['detail']}" if found.get("detail") else ""
    return f"{found['kind']} at {found['site_id']}: {found['state']}{detail}"


def _dnc(commands: Sub, leaf: Leaf) -> None:
    group = commands.add_parser("dnc", help="the company do-not-call list")
    sub = group.add_subparsers(dest="dnc_command", metavar="ACTION", required=True)
    leaf(sub, "list", _list_dnc, "list the numbers on the company list")
    add = leaf(sub, "add", _add_dnc, "put a number on the list (pushed to every site)", False)
    add.add_argument("number")
    add.add_argument("--reason", default="", help="why (kept with the number)")
    remove = leaf(sub, "remove", _remove_dnc, "take a number off the list", False)
    remove.add_argument("number")


def _list_dnc(client: HqClient, args: argparse.Namespace) -> Result:
    rows = client.get(f"{FLEET}/dnc")["numbers"]
    return Result(rows, ("number", "reason"), sheet="dnc")


def _add_dnc(client: HqClient, args: argparse.Namespace) -> str:
    body = {"reason": args.reason}
    done = client.call("PUT", f"{FLEET}/dnc/{segment(args.number)}", body=body)
    return f"{done['number']} is on the list (version {done['version']})"


def _remove_dnc(client: HqClient, args: argparse.Namespace) -> str:
    done = client.call("DELETE", f"{FLEET}/dnc/{segment(args.number)}")
    return f"{done['number']} is off the list (version {done['version']})"
