"""Entry-by-entry changes between two routing tables (Clone pattern ``update`` payload).

``changes`` is ``{"set": {key: value}, "delete": [key]}``; ``apply(old, diff(old, new))``
equals ``new`` for any two flat tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ChangesError(Exception):
    """A changes document that is not ``{"set": map, "delete": list of keys}``."""


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The changes that turn ``old`` into ``new``."""
    changed = {k: v for k, v in new.items() if k not in old or old[k] != v}
    removed = sorted(k for k in old if k not in new)
    return {"set": changed, "delete": removed}


def apply(old: Mapping[str, Any], changes: Any) -> dict[str, Any]:
    """A new table: ``old`` with ``changes`` applied (``old`` is left untouched)."""
    if not isinstance(changes, dict) or set(changes) - {"set", "delete"}:
        raise ChangesError("changes must be a map with only 'set' and 'delete'")
    updates = changes.get("set", {})
    removed = changes.get("delete", [])
    if not isinstance(updates, dict) or not isinstance(removed, list):
        raise ChangesError("changes.set must be a map and changes.delete a list")
    if not all(isinstance(k, str) for k in [*updates, *removed]):
        raise ChangesError("table keys are strings")
    table = dict(old)
    for key in removed:
        table.pop(key, None)
    table.update(updates)
    return table


def is_empty(changes: Mapping[str, Any]) -> bool:
    """Whether the changes change nothing."""
    return not changes.get("set") and not changes.get("delete")
