"""Charge postings to the PMS: a durable queue and the one-outstanding sender (sans-I/O).

Theory of operation. A posting is appended to the ``pms-posting`` outbox in LMDB with an
fsync'd commit; the outbox sequence number is its P#, so numbers increase, are persisted and
are never reused, even after a restart. The sender keeps at most one posting outstanding (the
oldest in the outbox) and only while the link allows postings. A PA whose P# matches ends it:
a final status marks it completed, and the service deletes completed postings from the outbox
in batches off the event loop, so one fsync'd commit covers every answer that arrived
meanwhile and the next posting need not wait for the disk. NA (night audit), RY and BY keep it
and wait ``retry_after`` before sending it again. No answer within ``answer_timeout``, a link
loss or a restart sends the same posting again with the same P#, so the PMS can recognise a
repeat (so does a crash between a final answer and its deletion): on our side nothing is
dropped, and a P# is never given to another charge. A PA for any other P# (late, doubled) is
logged and ignored. Postings are never filtered by room state: a charge for a room checked
out in between is still sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import msgpack

from appliance.store import Outbox, Store
from drivers.fias.grammar import FINAL_POSTING_STATUSES, RecordPA, RecordPS

log = logging.getLogger(__name__)

OUTBOX = "pms-posting"
MAX_POSTING_NUMBER = 99_999_999
# The source of each posting queued with add_once (its P#), beside the hotel's state.
SOURCES_DB = "hotel"
SOURCE_PREFIX = "posting-source:"


class PostingError(Exception):
    """A posting cannot be queued (``error_id`` names why)."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id


@dataclass(frozen=True)
class Posting:
    """A PS without its P#: RN first, then the other fields in wire order."""

    room: str
    fields: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, room: str, values: Mapping[str, str | int]) -> Posting:
        """A posting for ``room`` with ``values`` (PT, TA, DA, TI, DD, DU, PC, CT, ...)."""
        if not room or "P#" in values or "RN" in values:
            raise PostingError("bad-posting", "a posting needs a room and takes no RN/P# field")
        return cls(room, tuple((key, str(value)) for key, value in values.items()))

    def record(self, number: int) -> RecordPS:
        """The PS record carrying P# ``number``."""
        return RecordPS((("RN", self.room), *self.fields, ("P#", str(number))))


@dataclass(frozen=True)
class PostingOutcome:
    """The PMS's final answer to one posting."""

    number: int
    room: str
    status: str
    text: str


def _payload(posting: Posting) -> bytes:
    packed: bytes = msgpack.packb([posting.room, list(posting.fields)], use_bin_type=True)
    return packed


class PostingQueue:
    """The durable, ordered queue of postings not yet finally answered."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._outbox = Outbox(store, OUTBOX)
        self._keys = store.db(SOURCES_DB)

    def add(self, posting: Posting) -> int:
        """Queue ``posting`` durably; returns its P#."""
        self._check_numbers()
        return self._outbox.append(_payload(posting))

    def add_once(self, posting: Posting, source: str) -> int | None:
        """Queue ``posting`` unless one was queued for ``source`` (e.g. a CDR id) before.

        The source is stored in the same commit as the posting, so a charge is queued
        exactly once however often its source is offered (after a crash, say).
        """
        self._check_numbers()
        key = (SOURCE_PREFIX + source).encode()
        with self._store.write() as txn:
            if txn.get(key, db=self._keys) is not None:
                return None
            [number] = self._outbox.append_in(txn, [_payload(posting)])
            txn.put(key, msgpack.packb(number), db=self._keys)
        return int(number)

    def queued_for(self, source: str) -> bool:
        """Whether a posting was queued for ``source``."""
        with self._store.read() as txn:
            return txn.get((SOURCE_PREFIX + source).encode(), db=self._keys) is not None

    def _check_numbers(self) -> None:
        if self._outbox.last_seq() >= MAX_POSTING_NUMBER:
            raise PostingError("posting-numbers-exhausted", "P# reached 99999999")

    def head(self, skip: Collection[int] = ()) -> tuple[int, Posting] | None:
        """The oldest posting not finally answered and not in ``skip``, with its P#."""
        for number, payload in self._outbox.read_batch(limit=len(skip) + 1):
            if number not in skip:
                room, fields = msgpack.unpackb(payload, raw=False)
                return number, Posting(room, tuple((key, value) for key, value in fields))
        return None

    def complete(self, numbers: Collection[int]) -> None:
        """Forget finally answered postings, in one durable commit."""
        self._outbox.ack(numbers)

    def pending(self) -> int:
        """How many postings wait for a final answer."""
        return self._outbox.pending()


class PostingSender:
    """Decides when the head posting goes out, and matches PA answers to it."""

    def __init__(
        self,
        queue: PostingQueue,
        clock: Callable[[], float],
        *,
        answer_timeout: float = 30.0,
        retry_after: float = 30.0,
    ) -> None:
        self.queue = queue
        self._clock = clock
        self._answer_timeout = answer_timeout
        self._retry_after = retry_after
        self.outstanding: int | None = None
        self._outstanding_room = ""
        self.completing: set[int] = set()
        self._uncommitted: list[int] = []
        self._deadline = 0.0
        self._hold_until = 0.0

    def next_record(self, allowed: bool) -> RecordPS | None:
        """The PS to write now, if any (the head posting, once at a time)."""
        now = self._clock()
        if not allowed or now < self._hold_until:
            return None
        if self.outstanding is not None and now < self._deadline:
            return None
        head = self.queue.head(self.completing)
        if head is None:
            return None
        number, posting = head
        if self.outstanding == number:
            log.warning(
                "no PA for P#%d within %.0fs; sending it again", number, self._answer_timeout
            )
        self.outstanding, self._outstanding_room = number, posting.room
        self._deadline = now + self._answer_timeout
        return posting.record(number)

    def answer(self, answer: RecordPA) -> PostingOutcome | None:
        """Match a PA; returns the outcome when it finally answers the outstanding posting."""
        number = answer.posting_number
        if number is None or number != self.outstanding:
            log.warning("PA for P#%s does not match the outstanding posting; ignored", number)
            return None
        status = answer.status or ""
        self.outstanding = None
        if status not in FINAL_POSTING_STATUSES:
            log.info(
                "PMS answered P#%d with %s; retrying in %.0fs", number, status, self._retry_after
            )
            self._hold_until = self._clock() + self._retry_after
            return None
        self.completing.add(number)
        self._uncommitted.append(number)
        return PostingOutcome(number, self._outstanding_room, status, answer.get("CT") or "")

    def take_completed(self) -> list[int]:
        """Numbers finally answered since the last call, for one deleting commit."""
        numbers, self._uncommitted = self._uncommitted, []
        return numbers

    def committed(self, numbers: Collection[int]) -> None:
        """The deletion of ``numbers`` is on disk."""
        self.completing.difference_update(numbers)

    def pending(self) -> int:
        """Postings still waiting for a final answer."""
        return self.queue.pending() - len(self.completing)

    def link_lost(self) -> None:
        """The link went away: the outstanding posting is sent again when it returns."""
        self.outstanding = None
        self._hold_until = 0.0

    def resume(self) -> None:
        """Night audit ended: send the held posting at once."""
        self._hold_until = 0.0
