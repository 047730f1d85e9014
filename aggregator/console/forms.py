"""HTML forms of the directory and the SIM fleet: fields, parsing, errors per field.

A form is a tuple of ``Field``; ``parse`` turns the submitted text into the dict a
pydantic model validates, and ``field_errors`` turns a ValidationError into messages
keyed by the field they belong to (``FORM`` for whole-entry problems), so each message
is shown next to its field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from aggregator.directory.model import Directory, NumberingPlan, Rule, Site, Trunk

FORM = "__form__"
Kind = Literal["text", "list", "select", "number", "targets", "checkbox"]


@dataclass(frozen=True)
class Field:
    """One input of a form; ``optional`` text left empty is sent as null."""

    name: str
    label: str
    kind: Kind = "text"
    options: tuple[str, ...] = ()
    optional: bool = False
    hint: str = ""


DIRECTORY_FORMS: Mapping[str, tuple[Field, ...]] = {
    "sites": (
        Field("id", "Site id", hint="lower-case letters, digits, dashes"),
        Field("name", "Name"),
        Field("profile", "Profile", "select", ("branch", "hotel", "sim-gateway")),
        Field("sip_address", "SIP address", hint="host or IP on the company network"),
        Field("timezone", "Time zone", hint="IANA name, e.g. Europe/Berlin"),
        Field("code", "Site code", optional=True, hint="1 to 4 digits, for prefix dialling"),
        Field("region", "Region", optional=True, hint="groups sites on the sites page"),
        Field("extensions", "Extensions", "list", hint="comma separated"),
        Field("ranges", "Extension ranges", "list", hint="e.g. 100-199, comma separated"),
    ),
    "trunks": (
        Field("id", "Trunk id"),
        Field("site", "Site"),
        Field("kind", "Kind", "select", ("sip", "gsm")),
        Field("numbers", "Numbers it owns", "list", hint="comma separated, e.g. +4930100"),
        Field("caller_id", "Default caller ID", optional=True),
    ),
    "rules": (
        Field("id", "Rule id"),
        Field("prefix", "Dialled prefix"),
        Field("min_length", "Shortest number", "number"),
        Field("max_length", "Longest number", "number"),
        Field("priority", "Priority", "number", hint="lower is tried first"),
        Field("sites", "Applies at sites", "list", hint="empty: every site"),
        Field(
            "targets",
            "Targets",
            "targets",
            hint="one per line: trunk gsm-1 cost=1 strip=0 prepend= caller_id=",
        ),
    ),
}
PLAN_FORM = (
    Field("flat", "Extensions unique company-wide", "checkbox"),
    Field("site_prefix", "Site prefix", hint="0 to 2 digits before site code and extension"),
)
LIMITS_FORM = (
    Field("calls_per_day", "Calls per day", "number", optional=True),
    Field("minutes_per_day", "Minutes per day", "number", optional=True),
    Field("minutes_per_month", "Minutes per month", "number", optional=True),
    Field("max_call_s", "Longest call (s)", "number", optional=True),
)
MODELS: Mapping[str, type[BaseModel]] = {"sites": Site, "trunks": Trunk, "rules": Rule}


def parse(fields: Sequence[Field], form: Mapping[str, str]) -> dict[str, Any]:
    """The submitted text as the dict the form's model validates."""
    out: dict[str, Any] = {}
    for field in fields:
        text = form.get(field.name, "").strip()
        if field.kind == "checkbox":
            out[field.name] = bool(text)
        elif field.kind == "list":
            out[field.name] = [p for p in re.split(r"[,\s]+", text) if p]
        elif field.kind == "targets":
            out[field.name] = [_target(line) for line in text.splitlines() if line.strip()]
        elif text or field.optional:
            out[field.name] = text or None
    if "ranges" in out:
        out["ranges"] = [_range(r) for r in out["ranges"]]
    return out


def _range(text: str) -> dict[str, str]:
    first, _, last = text.partition("-")
    return {"first": first, "last": last or first}


def _target(line: str) -> dict[str, str]:
    words = line.split()
    target = {words[0]: words[1] if len(words) > 1 else ""}
    for word in words[2:]:
        key, _, value = word.partition("=")
        if value or key in ("prepend",):
            target[key] = value
    return target


def as_text(fields: Sequence[Field], values: Mapping[str, Any]) -> dict[str, str]:
    """An entry's values as the text its form shows."""
    shown: dict[str, str] = {}
    for field in fields:
        value = values.get(field.name)
        if field.kind == "list":
            items = value or []
            shown[field.name] = ", ".join(_range_text(v) for v in items)
        elif field.kind == "targets":
            shown[field.name] = "\n".join(_target_text(t) for t in value or [])
        elif field.kind == "checkbox":
            shown[field.name] = "on" if value else ""
        else:
            shown[field.name] = "" if value is None else str(value)
    return shown


def _range_text(value: Any) -> str:
    if isinstance(value, Mapping):
        first, last = value["first"], value["last"]
        return str(first) if first == last else f"{first}-{last}"
    return str(value)


def _target_text(target: Mapping[str, Any]) -> str:
    kind = "site" if target.get("site") else "trunk"
    extra = [f"{k}={v}" for k, v in target.items() if k not in ("site", "trunk") and v]
    return " ".join([kind, str(target[kind]), *extra])


def field_errors(err: ValidationError, fields: Sequence[Field]) -> dict[str, list[str]]:
    """Each problem under the field it belongs to; the rest under ``FORM``."""
    hints = {f.name: f.hint for f in fields}
    found: dict[str, list[str]] = {}
    for problem in err.errors():
        loc = problem["loc"]
        name = str(loc[0]) if loc and str(loc[0]) in hints else FORM
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["type"] == "string_pattern_mismatch" and hints.get(name):
            message = f"not valid here: {hints[name]}"
        found.setdefault(name, []).append(message)
    return found


def directory_entry(kind: str, values: Mapping[str, Any]) -> Any:
    """The directory entry of ``kind`` built from parsed values (ValidationError if bad)."""
    return MODELS[kind].model_validate(values)


def plan(values: Mapping[str, Any]) -> NumberingPlan:
    """The numbering plan built from parsed values (ValidationError if bad)."""
    return NumberingPlan.model_validate(values)


def entries(directory: Directory, kind: str) -> list[dict[str, Any]]:
    """The entries of one kind as JSON-ready dicts."""
    return [e.model_dump(mode="json") for e in getattr(directory, kind)]
