"""Hiding secrets in settings before they are shown (``callmesh … config``).

A value is secret when its field is named ``token``, ``password``, ``secret``,
``secrets`` or ``pin``, wherever it sits in the settings tree; a URL's password
(``postgresql://user:pw@host/db``) is hidden too. Unset values (None, empty) stay as
they are, so the output still shows what is configured.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
SECRET_FIELDS = frozenset({"token", "password", "secret", "secrets", "pin"})
_URL_PASSWORD = re.compile(r"^(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*(?P<tail>@.*)$")


def redact(doc: Any) -> Any:
    """``doc`` (a JSON-like settings dump) with every secret replaced by ``<redacted>``."""
    if isinstance(doc, dict):
        return {k: _hide(v) if k in SECRET_FIELDS else redact(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [redact(item) for item in doc]
    if isinstance(doc, str):
        return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}\g<tail>", doc)
    return doc


def _hide(value: Any) -> Any:
    if value is None or value in ("", {}, []):
        return value
    if isinstance(value, dict):
        return dict.fromkeys(value, REDACTED)
    return REDACTED
