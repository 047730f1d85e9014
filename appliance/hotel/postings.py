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
out in between is still sent. With a ``reports`` outbox (HQ's ``hotel`` stream) each finally
answered posting is appended to it in the commit that deletes the posting, so HQ hears of it
exactly once (``appliance/hotel/reports.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

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
    """A PS without its P#: RN first, then the other fields in wire order.

    ``queued_at`` (epoch seconds) and ``business_date`` (``YYYY-MM-DD``, the hotel's day
    the charge belongs to, ``appliance/hotel/business_date.py``) are set when it is queued.
    """

    room: str
    fields: tuple[tuple[str, str], ...]
    queued_at: float = 0.0
    business_date: str = ""

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
    """The PMS's final answer to one posting, answered at ``answered_at`` (epoch seconds)."""

    number: int
    posting: Posting
    status: str
    text: str
    answered_at: float

    @property
    def room(self) -> str:
        """The posting's room."""
        return self.posting.room


Reports = Callable[[Any, Sequence[PostingOutcome]], None]


def _payload(posting: Posting) -> bytes:
    packed: bytes = msgpack.packb(
        [posting.room, list(posting.fields), posting.queued_at, posting.business_date],
        use_bin_type=True,
    )
    return packed


def _posting(payload: bytes) -> Posting:
    # Postings queued before ``queued_at`` and ``business_date`` were stored are shorter.
    room, fields, *stamps = msgpack.unpackb(payload, raw=False)
    return Posting(room, tuple((key, value) for key, value in fields), *stamps)


class PostingQueue:
    """The durable, ordered queue of postings not yet finally answered.

    ``clock`` gives epoch seconds (``queued_at``, ``answered_at``), ``business_date`` the
    business date a posting is queued on; ``reports(txn, outcomes)``,
    when given, writes what HQ hears of finally answered
    postings inside the transaction that deletes them.
    """

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.time,
        reports: Reports | None = None,
        business_date: Callable[[], str] | None = None,
    ) -> None:
        self._store = store
        self._outbox = Outbox(store, OUTBOX)
        self._keys = store.db(SOURCES_DB)
        self.wall = clock
        self._reports = reports
        self._business_date = business_date

    def add(self, posting: Posting) -> int:
        """Queue ``posting`` durably; returns its P#."""
        self._check_numbers()
        return self._outbox.append(_payload(self._stamped(posting)))

    def _stamped(self, posting: Posting) -> Posting:
        business_date = self._business_date() if self._business_date is not None else ""
        return replace(posting, queued_at=self.wall(), business_date=business_date)

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
            [number] = self._outbox.append_in(txn, [_payload(self._stamped(posting))])
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
                return number, _posting(payload)
        return None

    def complete(self, outcomes: Sequence[PostingOutcome]) -> None:
        """Forget finally answered postings (and report them), in one durable commit."""
        with self._store.write() as txn:
            self._outbox.ack_in(txn, [outcome.number for outcome in outcomes])
            if self._reports is not None and outcomes:
                self._reports(txn, outcomes)

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
        self._outstanding_posting: Posting | None = None
        self.completing: set[int] = set()
        self._uncommitted: list[PostingOutcome] = []
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
        self.outstanding, self._outstanding_posting = number, posting
        self._deadline = now + self._answer_timeout
        return posting.record(number)

    def answer(self, answer: RecordPA) -> PostingOutcome | None:
        """Match a PA; returns the outcome when it finally answers the outstanding posting."""
        number, posting = answer.posting_number, self._outstanding_posting
        if number is None or number != self.outstanding or posting is None:
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
        outcome = PostingOutcome(number, posting, status, answer.get("CT") or "", self.queue.wall())
        self.completing.add(number)
        self._uncommitted.append(outcome)
        return outcome

    def take_completed(self) -> list[PostingOutcome]:
        """Postings finally answered since the last call, for one deleting commit."""
        outcomes, self._uncommitted = self._uncommitted, []
        return outcomes

    def committed(self, outcomes: Sequence[PostingOutcome]) -> None:
        """The deletion of ``outcomes`` is on disk."""
        self.completing.difference_update(outcome.number for outcome in outcomes)

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
