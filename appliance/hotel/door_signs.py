"""Door-sign statuses (``RE|RN..|RS..|``) owed to the PMS, kept durably until sent.

Theory of operation. A status is owed when the guest sets or clears DND from the room's
phone, or when a room whose door sign was on is checked out or moved out of. It is written
to the ``hotel`` database under ``door-sign:<room>`` in the same fsync'd transaction as the
room's changed document (:meth:`DoorSignQueue.owe_in`), so a restart loses neither. Only
the latest status per room is kept; a new one takes a new sequence number, so statuses go
out in the order they were last owed. The PMS link service sends them while the link
carries postings (after LA, not during a swap or a night audit) and forgets each one in a
durable commit right after writing it (:meth:`DoorSignQueue.sent`); RE has no answer, so a
crash between the write and that commit is the only way a status can go out twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from appliance.store import Store

DB = "hotel"
PREFIX = "door-sign:"
SEQ_KEY = b"door-sign-seq"


@dataclass(frozen=True)
class DoorSign:
    """One owed status: ``RS<status>`` for ``room``, ``seq`` giving its place in line."""

    seq: int
    room: str
    status: int


class DoorSignQueue:
    """The owed door-sign statuses, on disk and mirrored in memory (latest per room)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._db = store.db(DB)
        self._owed: dict[str, DoorSign] = {}
        self._last_seq = 0

    def load(self) -> None:
        """Read the owed statuses and the last sequence number from the store."""
        with self._store.read() as txn:
            raw = txn.get(SEQ_KEY, db=self._db)
            self._last_seq = 0 if raw is None else int(msgpack.unpackb(raw))
            self._owed = dict(_stored(txn.cursor(db=self._db)))

    def owe_in(self, txn: Any, statuses: Mapping[str, int]) -> list[DoorSign]:
        """Write ``statuses`` (room → RS) into the caller's write transaction.

        Returns the signs to :meth:`staged` once that transaction committed.
        """
        signs = []
        for room, status in statuses.items():
            self._last_seq += 1
            sign = DoorSign(self._last_seq, room, status)
            txn.put(_key(room), msgpack.packb([sign.seq, status]), db=self._db)
            signs.append(sign)
        if signs:
            txn.put(SEQ_KEY, msgpack.packb(self._last_seq), db=self._db)
        return signs

    def staged(self, signs: Iterable[DoorSign]) -> None:
        """``signs`` are on disk: they replace what each room owed before."""
        for sign in signs:
            self._owed[sign.room] = sign

    def owed(self) -> list[DoorSign]:
        """The statuses not yet sent, oldest first."""
        return sorted(self._owed.values(), key=lambda sign: sign.seq)

    def sent(self, sign: DoorSign) -> None:
        """``sign`` was written to the PMS: forget it durably (unless a newer one replaced it)."""
        with self._store.write() as txn:
            raw = txn.get(_key(sign.room), db=self._db)
            if raw is not None and msgpack.unpackb(raw)[0] == sign.seq:
                txn.delete(_key(sign.room), db=self._db)
        if self._owed.get(sign.room) == sign:
            del self._owed[sign.room]

    def __len__(self) -> int:
        return len(self._owed)


def _key(room: str) -> bytes:
    return (PREFIX + room).encode()


def _stored(cursor: Any) -> Iterable[tuple[str, DoorSign]]:
    found = cursor.set_range(PREFIX.encode())
    while found:
        key = bytes(cursor.key()).decode()
        if not key.startswith(PREFIX):
            break
        seq, status = msgpack.unpackb(cursor.value())
        room = key.removeprefix(PREFIX)
        yield room, DoorSign(int(seq), room, int(status))
        found = cursor.next()
