"""Durable SMS records in LMDB, the send queue, and the ``sms`` outbox for HQ.

Databases: ``sms:out`` and ``sms:in`` map an SMS id (a UUIDv7, so key order is creation
order) to its msgpack record; ``sms:queue`` holds the ids of outgoing SMS not finished
yet. Every change is one fsync'd commit. A record that is final (a received SMS, or an
outgoing one ``sent`` or ``failed``) is appended to the ``sms`` outbox in the same
commit, so HQ receives it at least once and a crash cannot lose it in between. Only
finished records beyond ``keep`` per direction are pruned, oldest first.
"""

from __future__ import annotations

from typing import Any

import msgpack

from appliance.store import Outbox, Store

OUTBOX = "sms"
FINAL = frozenset({"sent", "failed", "received"})
DIRECTIONS = ("in", "out")


def _pack(record: dict[str, Any]) -> bytes:
    return bytes(msgpack.packb(record, use_bin_type=True))


def _unpack(raw: bytes) -> dict[str, Any]:
    record: dict[str, Any] = msgpack.unpackb(raw, raw=False)
    return record


class SmsStore:
    """Received and outgoing SMS records, newest first for the API, oldest first to send."""

    def __init__(self, store: Store, keep: int) -> None:
        self._store = store
        self._dbs = {d: store.db(f"sms:{d}") for d in DIRECTIONS}
        self._queue = store.db("sms:queue")
        self._outbox = Outbox(store, OUTBOX)
        self._keep = keep

    def put(self, record: dict[str, Any]) -> None:
        """Write a record (new or changed); queue, dequeue and outbox follow its status."""
        key = record["id"].encode()
        direction = record["direction"]
        final = record["status"] in FINAL
        with self._store.write() as txn:
            txn.put(key, _pack(record), db=self._dbs[direction])
            if final:
                txn.delete(key, db=self._queue)
                self._outbox.append_in(txn, [_pack(record)])
                self._prune(txn, direction)
            else:
                txn.put(key, b"", db=self._queue)

    def get(self, sms_id: str) -> dict[str, Any] | None:
        """One record by id, either direction."""
        with self._store.read() as txn:
            for db in self._dbs.values():
                raw = txn.get(sms_id.encode(), db=db)
                if raw is not None:
                    return _unpack(raw)
        return None

    def unfinished(self) -> list[dict[str, Any]]:
        """Outgoing records still queued or sending, oldest first."""
        with self._store.read() as txn:
            ids = [bytes(k) for k, _ in txn.cursor(db=self._queue)]
            raws = [txn.get(k, db=self._dbs["out"]) for k in ids]
        return [_unpack(r) for r in raws if r is not None]

    def page(
        self, direction: str, limit: int, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` records older than ``cursor``, newest first, and the next cursor."""
        found: list[dict[str, Any]] = []
        with self._store.read() as txn:
            walk = txn.cursor(db=self._dbs[direction])
            at = walk.set_range(cursor.encode()) if cursor else walk.last()
            if cursor and not at:
                at = walk.last()
            elif cursor and bytes(walk.key()) >= cursor.encode():
                at = walk.prev()
            while at and len(found) < limit:
                found.append(_unpack(walk.value()))
                at = walk.prev()
            more = bool(at)
        next_cursor = found[-1]["id"] if found and more else None
        return found, next_cursor

    def _prune(self, txn: Any, direction: str) -> None:
        db = self._dbs[direction]
        excess = txn.stat(db)["entries"] - self._keep
        walk = txn.cursor(db=db)
        at = walk.first()
        while excess > 0 and at:
            if txn.get(walk.key(), db=self._queue) is None:
                walk.delete()
                excess -= 1
                at = walk.key() != b""
            else:
                at = walk.next()
