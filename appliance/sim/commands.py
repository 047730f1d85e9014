"""HQ's SIM commands applied to the operator overrides document (pure).

The document (state key ``sim:policy``) holds what HQ set: ``groups`` {group: limits},
``sims`` {iccid: {limits, group, disabled, retired}}, ``force`` {channel: slot} and
``applied`` {command id: [ok, detail]}. A command id already in ``applied`` changes
nothing and answers what it answered the first time, so a command re-sent after a
reconnect or a restart is applied once. A command's arguments are parsed into the
``SimCommand`` record HQ built them from (``drivers/sync/records.py``); one that does
not parse is answered as failed with the record's error.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from appliance.sim.limits import Limits, LimitsError
from drivers.sync.records import SIM_COMMANDS, RecordError, SimCommand, parse_sim_command

KEEP_APPLIED = 1000


class CommandError(ValueError):
    """The command's arguments are unusable; the message goes back to HQ."""


def handles(kind: str) -> bool:
    """Whether ``kind`` is a SIM command."""
    return kind in SIM_COMMANDS


def apply(doc: Any, command_id: str, kind: str, args: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the command applied and recorded (unchanged if already applied)."""
    new: dict[str, Any] = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    applied = new.setdefault("applied", {})
    if command_id in applied:
        return new
    try:
        command = parse_sim_command(kind, args)
        applied[command_id] = [True, _HANDLERS[kind](new, command)]
    except RecordError as err:
        applied[command_id] = [False, err.message]
    except CommandError as err:
        applied[command_id] = [False, str(err)]
    for old in list(applied)[: max(0, len(applied) - KEEP_APPLIED)]:
        del applied[old]
    return new


def result(doc: dict[str, Any], command_id: str) -> tuple[bool, str]:
    """What the command answered when it was applied."""
    ok, detail = doc["applied"][command_id]
    return bool(ok), str(detail)


def _sim(doc: dict[str, Any], command: SimCommand) -> dict[str, Any]:
    entry: dict[str, Any] = doc.setdefault("sims", {}).setdefault(command.iccid, {})
    return entry


def _limits(command: SimCommand) -> dict[str, Any]:
    try:
        return Limits.from_doc(command.limits).to_doc()
    except LimitsError as err:
        raise CommandError(f"limits: {err}") from None


def _set_limits(doc: dict[str, Any], command: SimCommand) -> str:
    _sim(doc, command)["limits"] = _limits(command)
    return f"limits of {command.iccid} set"


def _set_group_limits(doc: dict[str, Any], command: SimCommand) -> str:
    doc.setdefault("groups", {})[command.group] = _limits(command)
    return f"limits of group {command.group} set"


def _flag(name: str, value: bool) -> Callable[[dict[str, Any], SimCommand], str]:
    def handler(doc: dict[str, Any], command: SimCommand) -> str:
        _sim(doc, command)[name] = value
        return f"{command.iccid} {name if value else 'enabled'}"

    return handler


def _set_group(doc: dict[str, Any], command: SimCommand) -> str:
    _sim(doc, command)["group"] = command.group
    return f"{command.iccid} moved to group {command.group}"


def _select_slot(doc: dict[str, Any], command: SimCommand) -> str:
    doc.setdefault("force", {})[command.channel] = command.slot
    return f"slot {command.slot} of {command.channel} is selected once the channel is idle"


def _clear_review(doc: dict[str, Any], command: SimCommand) -> str:
    entry = _sim(doc, command)
    entry["review_cleared"] = entry.get("review_cleared", 0) + 1
    return f"review flag of {command.iccid} cleared"


_HANDLERS: dict[str, Callable[[dict[str, Any], SimCommand], str]] = {
    "sim-set-limits": _set_limits,
    "sim-set-group-limits": _set_group_limits,
    "sim-disable": _flag("disabled", True),
    "sim-enable": _flag("disabled", False),
    "sim-retire": _flag("retired", True),
    "sim-set-group": _set_group,
    "sim-select-slot": _select_slot,
    "sim-clear-review": _clear_review,
}
