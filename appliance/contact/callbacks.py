"""Callers waiting for a callback, kept in LMDB so they keep their place after a restart.

A caller who pressed 1 has hung up: nothing but this record remembers it until an agent
answers its callback. Each is written when the caller presses 1 (state namespace
``contact-callbacks``, fsync'd), written again with each try counted as it starts (so a
restart neither loses nor repeats a try) and deleted once the caller answered a call back
or its last try failed; ``waiting`` reads them back in order of entry, skipping (and
logging) any that cannot be read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from appliance.store import Store
from appliance.store.state import StateStore

log = logging.getLogger(__name__)

NAMESPACE = "contact-callbacks"


@dataclass(frozen=True)
class StoredCallback:
    """A caller waiting for a callback, as stored."""

    call_id: str
    queue: str
    caller: str
    entered: float
    priority: int
    skills: dict[str, int] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    tries: int = 0
    next_try: float = 0.0

    @classmethod
    def parse(cls, call_id: str, doc: Any) -> StoredCallback:
        """The record stored under ``call_id``; ValueError when it is not one."""
        try:
            return cls(call_id, _text(doc["queue"]), _text(doc["caller"]),
                       float(doc["entered"]), int(doc["priority"]),
                       {_text(k): int(v) for k, v in dict(doc["skills"]).items()},
                       {_text(k): _text(v) for k, v in dict(doc["variables"]).items()},
                       int(doc.get("tries", 0)), float(doc.get("next_try", 0.0)))  # fmt: skip
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"stored callback {call_id}: {err!r}") from err


class CallbackStore:
    """The callbacks waiting, in LMDB."""

    def __init__(self, store: Store) -> None:
        self._state = StateStore(store, NAMESPACE)

    def add(self, callback: StoredCallback) -> None:
        """The caller pressed 1 (or a try started): keep it until the caller answered a
        call back or its last try failed."""
        doc = asdict(callback)
        del doc["call_id"]
        self._state.put(callback.call_id, doc)

    def done(self, call_id: str) -> None:
        """The caller answered a call back, or its last try failed."""
        self._state.delete(call_id)

    def waiting(self) -> Iterator[StoredCallback]:
        """Every stored callback, oldest first; unreadable ones are logged and skipped."""
        found = []
        for call_id, doc in self._state.items():
            try:
                found.append(StoredCallback.parse(call_id, doc))
            except ValueError as err:
                log.warning("%s skipped (error_id callback-unreadable)", err)
        yield from sorted(found, key=lambda c: c.entered)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not text")
    return value
