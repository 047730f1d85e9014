"""Key/value state that must survive restarts: routing snapshot, SIM counters, schedules.

Values are msgpack documents. ``update`` runs read-modify-write in one transaction so
counters cannot lose increments between two writers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgpack

from appliance.store.environment import Store


class StateStore:
    """A namespace of durable key/value state inside a Store."""

    def __init__(self, store: Store, namespace: str = "state") -> None:
        self._store = store
        self._db = store.db(namespace)

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        with self._store.read() as txn:
            raw = txn.get(key.encode(), db=self._db)
        return default if raw is None else msgpack.unpackb(raw, raw=False)

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` durably under ``key``."""
        with self._store.write() as txn:
            txn.put(key.encode(), msgpack.packb(value, use_bin_type=True), db=self._db)

    def put_in(self, txn: Any, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` inside the caller's write transaction."""
        txn.put(key.encode(), msgpack.packb(value, use_bin_type=True), db=self._db)

    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it existed."""
        with self._store.write() as txn:
            existed: bool = txn.delete(key.encode(), db=self._db)
            return existed

    def update(self, key: str, change: Callable[[Any], Any], default: Any = None) -> Any:
        """Apply ``change`` to the current value atomically; returns the new value."""
        with self._store.write() as txn:
            raw = txn.get(key.encode(), db=self._db)
            current = default if raw is None else msgpack.unpackb(raw, raw=False)
            new = change(current)
            txn.put(key.encode(), msgpack.packb(new, use_bin_type=True), db=self._db)
        return new

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """Every key starting with ``prefix`` and its value, in key order."""
        with self._store.read() as txn:
            cursor = txn.cursor(db=self._db)
            found = cursor.set_range(prefix.encode()) if prefix else cursor.first()
            pairs = []
            while found:
                key = bytes(cursor.key()).decode()
                if not key.startswith(prefix):
                    break
                pairs.append((key, msgpack.unpackb(cursor.value(), raw=False)))
                found = cursor.next()
        yield from pairs
