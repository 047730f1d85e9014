"""Extensions from a CSV file: ``number,name,password`` with a header row.

A blank password is generated (or kept from the last provisioning, so a re-run changes
nothing). Every row is checked before any is used; the first bad one is reported with
its line number and nothing is applied.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Mapping
from pathlib import Path

import pydantic

from appliance.provision import ProvisionError
from appliance.settings import Extension

COLUMNS = ("number", "name", "password")


def read_csv(path: Path, known_passwords: Mapping[str, str]) -> tuple[Extension, ...]:
    """The extensions in ``path``; ``known_passwords`` fill blank passwords first."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise ProvisionError(
            "extensions-unreadable", f"cannot read {path}: {err.strerror}"
        ) from None
    return parse_csv(text, str(path), known_passwords)


def parse_csv(text: str, source: str, known_passwords: Mapping[str, str]) -> tuple[Extension, ...]:
    """The extensions in CSV ``text`` (``source`` names it in errors)."""
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(reader.fieldnames or ())
    if "number" not in header or not set(header) <= set(COLUMNS):
        raise ProvisionError(
            "extensions-header",
            f"{source} line 1: the header must be number,name,password (got {','.join(header)})",
        )
    found: dict[str, Extension] = {}
    for row in reader:
        line = reader.line_num
        extension = _row(row, known_passwords, f"{source} line {line}")
        if extension.number in found:
            raise ProvisionError(
                "extension-duplicate", f"{source} line {line}: extension {extension.number} twice"
            )
        found[extension.number] = extension
    return tuple(found.values())


def _row(row: Mapping[str, str | None], known: Mapping[str, str], where: str) -> Extension:
    if None in row:
        raise ProvisionError("extension-invalid", f"{where}: more than three columns")
    number = (row.get("number") or "").strip()
    password = (row.get("password") or "").strip()
    password = password or known.get(number) or secrets.token_urlsafe(12)
    try:
        return Extension(number=number, name=(row.get("name") or "").strip(), password=password)
    except pydantic.ValidationError as err:
        problem = err.errors()[0]
        field = ".".join(map(str, problem["loc"]))
        raise ProvisionError("extension-invalid", f"{where}: {field}: {_why(field)}") from None


def _why(field: str) -> str:
    if field == "number":
        return "an extension number is 2 to 8 digits"
    if field == "password":
        return "a password has 8 to 128 characters (leave it blank to generate one)"
    return "invalid"
