"""A durable, ordered outbox: append with an fsync'd commit, delete only on acknowledgement.

Entries are keyed by a 64-bit big-endian sequence number, so LMDB's key order is the
append order. The highest sequence ever handed out is kept in the store's meta area and
updated in the same transaction as the append, so a number is never reused, even after
every entry was acknowledged and deleted.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

from appliance.store.environment import Store

_KEY = struct.Struct(">Q")


class Outbox:
    """One named outbox (``cdr``, ``recording``, ...) inside a Store."""

    def __init__(self, store: Store, name: str) -> None:
        self.name = name
        self._store = store
        self._db = store.db(f"outbox:{name}")
        self._hwm_key = f"outbox-hwm:{name}"

    def append(self, payload: bytes) -> int:
        """Append one entry; returns its sequence once the commit is on disk."""
        return self.append_many([payload])[0]

    def append_many(self, payloads: Sequence[bytes]) -> list[int]:
        """Append entries in one durable commit; returns their sequence numbers."""
        with self._store.write() as txn:
            return self.append_in(txn, payloads)

    def append_in(self, txn: Any, payloads: Sequence[bytes]) -> list[int]:
        """Append entries inside the caller's write transaction (one commit with its writes)."""
        seq = self._high_water(txn)
        seqs = []
        for payload in payloads:
            seq += 1
            txn.put(_KEY.pack(seq), payload, db=self._db, append=True)
            seqs.append(seq)
        self._store.meta_put(self._hwm_key, _KEY.pack(seq), txn)
        return seqs

    def read_batch(self, after: int = 0, limit: int = 500) -> list[tuple[int, bytes]]:
        """Up to ``limit`` entries with a sequence above ``after``, oldest first."""
        batch: list[tuple[int, bytes]] = []
        with self._store.read() as txn:
            cursor = txn.cursor(db=self._db)
            if not cursor.set_range(_KEY.pack(after + 1)):
                return batch
            for key, value in cursor:
                batch.append((_KEY.unpack(key)[0], bytes(value)))
                if len(batch) >= limit:
                    break
        return batch

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged entries; returns how many were present."""
        with self._store.write() as txn:
            return self.ack_in(txn, seqs)

    def ack_in(self, txn: Any, seqs: Iterable[int]) -> int:
        """Delete entries inside the caller's write transaction (one commit with its writes)."""
        return sum(1 for seq in seqs if txn.delete(_KEY.pack(seq), db=self._db))

    def ack_through(self, last: int) -> int:
        """Delete every entry with a sequence up to and including ``last``."""
        deleted = 0
        with self._store.write() as txn:
            cursor = txn.cursor(db=self._db)
            if not cursor.first():
                return 0
            while cursor.key() and _KEY.unpack(cursor.key())[0] <= last:
                cursor.delete()
                deleted += 1
        return deleted

    def pending(self) -> int:
        """How many entries wait for acknowledgement."""
        with self._store.read() as txn:
            entries: int = txn.stat(self._db)["entries"]
            return entries

    def last_seq(self) -> int:
        """The highest sequence number ever appended (0 for a new outbox)."""
        with self._store.read() as txn:
            return self._high_water(txn)

    def _high_water(self, txn: Any) -> int:
        raw = self._store.meta_get(self._hwm_key, txn)
        return _KEY.unpack(raw)[0] if raw else 0
