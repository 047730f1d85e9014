"""Entry-by-entry changes between two routing tables (Clone pattern ``update`` payload).

The changes are a ``RoutingChanges`` record (``drivers/sync/records.py``), on the wire
``{"set": {key: value}, "delete": [key]}``; ``apply(old, diff(old, new))`` equals
``new`` for any two flat tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.sync.records import RecordError, RoutingChanges, parse_routing_changes


class ChangesError(RecordError):
    """A changes document that is not ``{"set": map, "delete": list of keys}``."""


def between(old: Mapping[str, Any], new: Mapping[str, Any]) -> RoutingChanges:
    """The changes that turn ``old`` into ``new``."""
    changed = {k: v for k, v in new.items() if k not in old or old[k] != v}
    return RoutingChanges(changed, tuple(sorted(k for k in old if k not in new)))


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The changes that turn ``old`` into ``new``, as the ``update`` carries them."""
    return between(old, new).to_doc()


def apply(old: Mapping[str, Any], changes: Any) -> dict[str, Any]:
    """A new table: ``old`` with ``changes`` (a record or its wire form) applied.

    ``old`` is left untouched; malformed changes raise ChangesError.
    """
    if not isinstance(changes, RoutingChanges):
        try:
            changes = parse_routing_changes(changes)
        except RecordError as err:
            raise ChangesError(err.error_id, err.message) from None
    table = dict(old)
    for key in changes.deleted:
        table.pop(key, None)
    table.update(changes.changed)
    return table
