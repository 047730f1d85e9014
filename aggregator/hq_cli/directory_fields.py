"""A directory entry as the command line gives it: ``FIELD=VALUE`` words, a YAML or JSON
file, fields to unset. Only the shape is checked here; HQ validates the values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import IO, Any

from aggregator.hq_cli.errors import EXIT_USAGE, HqCliError

FIELD = re.compile(r"^[a-z][a-z_]{0,63}$")
MAX_FILE_BYTES = 1_000_000


def new_entry(entry_id: str, words: list[str], file: str | None, stdin: IO[str]) -> dict[str, Any]:
    """The entry to add: the file's fields, then the words', with the id given."""
    return {**_file_fields(file, stdin), **assignments(words), "id": entry_id}


def changed_entry(
    current: dict[str, Any], words: list[str], file: str | None, unset: list[str], stdin: IO[str]
) -> dict[str, Any]:
    """The entry HQ holds with the file's and the words' fields changed and ``unset`` removed."""
    changes = {**_file_fields(file, stdin), **assignments(words)}
    if not changes and not unset:
        raise HqCliError("nothing-to-change", "name a FIELD=VALUE, --file or --unset", EXIT_USAGE)
    for name in unset:
        _field_name(name)
    entry = {k: v for k, v in {**current, **changes}.items() if k not in unset}
    entry["id"] = current["id"]
    return entry


def assignments(words: list[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` words as fields: JSON when the value starts with ``[`` or ``{``."""
    fields: dict[str, Any] = {}
    for word in words:
        name, sign, text = word.partition("=")
        if not sign:
            raise HqCliError(
                "bad-field", f"{word!r} is not FIELD=VALUE", EXIT_USAGE,
                hint="e.g. name=Berlin or 'extensions=[\"1001\",\"1002\"]'",
            )  # fmt: skip
        fields[_field_name(name)] = _value(name, text)
    return fields


def plan_body(
    current: dict[str, Any], flat: bool | None, site_prefix: str | None
) -> dict[str, Any]:
    """The numbering plan HQ holds with the options given changed."""
    plan = dict(current)
    if flat is not None:
        plan["flat"] = flat
    if site_prefix is not None:
        plan["site_prefix"] = site_prefix
    return plan


def _field_name(name: str) -> str:
    if not FIELD.match(name):
        raise HqCliError("bad-field", f"{name!r} is not a field name", EXIT_USAGE)
    return name


def _value(name: str, text: str) -> Any:
    if not text.startswith(("[", "{")):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise HqCliError("bad-field", f"{name}: not JSON ({err.msg})", EXIT_USAGE) from None


def _file_fields(file: str | None, stdin: IO[str]) -> dict[str, Any]:
    if file is None:
        return {}
    import yaml  # only when a file is given: every `callmesh` run imports this module

    try:
        text = stdin.read(MAX_FILE_BYTES) if file == "-" else _read(Path(file))
        found = yaml.safe_load(text)
    except OSError as err:
        raise HqCliError("file-unreadable", f"{file}: {err.strerror}", EXIT_USAGE) from None
    except yaml.YAMLError as err:
        raise HqCliError("file-invalid", f"{file}: not YAML or JSON ({err})", EXIT_USAGE) from None
    if not isinstance(found, dict):
        raise HqCliError("file-invalid", f"{file}: must hold one entry's fields", EXIT_USAGE)
    return found


def _read(path: Path) -> str:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise HqCliError("file-invalid", f"{path}: larger than {MAX_FILE_BYTES} bytes", EXIT_USAGE)
    return path.read_text()
