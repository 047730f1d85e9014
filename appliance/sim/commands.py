"""HQ's SIM commands applied to the operator overrides document (pure).

The document (state key ``sim:policy``) holds what HQ set: ``groups`` {group: limits},
``sims`` {iccid: {limits, group, disabled, retired}}, ``force`` {channel: slot} and
``applied`` {command id: [ok, detail]}. A command id already in ``applied`` changes
nothing and answers what it answered the first time, so a command re-sent after a
reconnect or a restart is applied once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from appliance.sim.limits import Limits, LimitsError

KEEP_APPLIED = 1000


class CommandError(ValueError):
    """The command's arguments are unusable; the message goes back to HQ."""


def handles(kind: str) -> bool:
    """Whether ``kind`` is a SIM command."""
    return kind in _HANDLERS


def apply(doc: Any, command_id: str, kind: str, args: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the command applied and recorded (unchanged if already applied)."""
    new: dict[str, Any] = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    applied = new.setdefault("applied", {})
    if command_id in applied:
        return new
    try:
        detail = _HANDLERS[kind](new, args)
        applied[command_id] = [True, detail]
    except CommandError as err:
        applied[command_id] = [False, str(err)]
    for old in list(applied)[: max(0, len(applied) - KEEP_APPLIED)]:
        del applied[old]
    return new


def result(doc: dict[str, Any], command_id: str) -> tuple[bool, str]:
    """What the command answered when it was applied."""
    ok, detail = doc["applied"][command_id]
    return bool(ok), str(detail)


def _text(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise CommandError(f"argument {name!r} must be a non-empty string")
    return value


def _sim(doc: dict[str, Any], args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    iccid = _text(args, "iccid")
    entry: dict[str, Any] = doc.setdefault("sims", {}).setdefault(iccid, {})
    return iccid, entry


def _limits(args: dict[str, Any]) -> dict[str, Any]:
    try:
        return Limits.from_doc(args.get("limits")).to_doc()
    except LimitsError as err:
        raise CommandError(f"limits: {err}") from None


def _set_limits(doc: dict[str, Any], args: dict[str, Any]) -> str:
    iccid, entry = _sim(doc, args)
    entry["limits"] = _limits(args)
    return f"limits of {iccid} set"


def _set_group_limits(doc: dict[str, Any], args: dict[str, Any]) -> str:
    group = _text(args, "group")
    doc.setdefault("groups", {})[group] = _limits(args)
    return f"limits of group {group} set"


def _flag(name: str, value: bool) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    def handler(doc: dict[str, Any], args: dict[str, Any]) -> str:
        iccid, entry = _sim(doc, args)
        entry[name] = value
        return f"{iccid} {name if value else 'enabled'}"

    return handler


def _set_group(doc: dict[str, Any], args: dict[str, Any]) -> str:
    iccid, entry = _sim(doc, args)
    entry["group"] = _text(args, "group")
    return f"{iccid} moved to group {entry['group']}"


def _select_slot(doc: dict[str, Any], args: dict[str, Any]) -> str:
    channel = _text(args, "channel")
    slot = args.get("slot")
    if type(slot) is not int or slot < 0:
        raise CommandError("argument 'slot' must be a slot number >= 0")
    doc.setdefault("force", {})[channel] = slot
    return f"slot {slot} of {channel} is selected once the channel is idle"


def _clear_review(doc: dict[str, Any], args: dict[str, Any]) -> str:
    iccid, entry = _sim(doc, args)
    entry["review_cleared"] = entry.get("review_cleared", 0) + 1
    return f"review flag of {iccid} cleared"


_HANDLERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], str]] = {
    "sim-set-limits": _set_limits,
    "sim-set-group-limits": _set_group_limits,
    "sim-disable": _flag("disabled", True),
    "sim-enable": _flag("disabled", False),
    "sim-retire": _flag("retired", True),
    "sim-set-group": _set_group,
    "sim-select-slot": _select_slot,
    "sim-clear-review": _clear_review,
}
