"""Postings: P# from the durable outbox, one outstanding, PA matched by P#, retries held."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.hotel.postings import Posting, PostingError, PostingQueue, PostingSender
from appliance.store import Store
from drivers.fias.grammar import RecordPA, parse_record


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", map_size_mb=16)
    yield opened
    opened.close()


def pa(text: str) -> RecordPA:
    record = parse_record(text.encode())
    assert isinstance(record, RecordPA)
    return record


def charge(room: str, cents: int) -> Posting:
    return Posting.of(room, {"PT": "C", "TA": cents})


def test_one_posting_outstanding_until_its_pa_then_the_next_in_order(store: Store) -> None:
    clock = Clock()
    sender = PostingSender(PostingQueue(store), clock)
    first, second = sender.queue.add(charge("101", 1050)), sender.queue.add(charge("0330", 200))
    assert (first, second) == (1, 2)
    record = sender.next_record(True)
    assert record is not None
    assert bytes(record) == b"PS|RN101|PTC|TA1050|P#1|"
    assert sender.next_record(True) is None, "a second PS before the PA"
    assert sender.answer(pa("PA|RN101|ASOK|P#1|")) is not None
    record = sender.next_record(True)
    assert record is not None
    assert bytes(record) == b"PS|RN0330|PTC|TA200|P#2|"


def test_a_pa_for_another_number_is_ignored_and_a_doubled_pa_ends_nothing_twice(
    store: Store,
) -> None:
    sender = PostingSender(PostingQueue(store), Clock())
    sender.queue.add(charge("101", 100))
    sender.queue.add(charge("102", 100))
    sender.next_record(True)
    assert sender.answer(pa("PA|RN101|ASOK|P#9|")) is None
    assert sender.answer(pa("PA|RN101|ASOK|P#1|")) is not None
    assert sender.answer(pa("PA|RN101|ASOK|P#1|")) is None
    assert sender.pending() == 1


def test_night_audit_answer_keeps_the_posting_and_holds_it_for_the_retry_delay(
    store: Store,
) -> None:
    clock = Clock()
    sender = PostingSender(PostingQueue(store), clock, retry_after=30.0)
    sender.queue.add(charge("101", 100))
    sender.next_record(True)
    assert sender.answer(pa("PA|RN101|ASNA|P#1|")) is None
    assert sender.queue.pending() == 1
    clock.now = 29.0
    assert sender.next_record(True) is None
    sender.resume()
    record = sender.next_record(True)
    assert record is not None
    assert record.posting_number == 1


def test_no_answer_resends_the_same_number_after_the_timeout(store: Store) -> None:
    clock = Clock()
    sender = PostingSender(PostingQueue(store), clock, answer_timeout=30.0)
    sender.queue.add(charge("101", 100))
    sender.next_record(True)
    clock.now = 29.0
    assert sender.next_record(True) is None
    clock.now = 30.0
    record = sender.next_record(True)
    assert record is not None
    assert record.posting_number == 1


def test_a_refused_posting_is_final_and_reported(store: Store) -> None:
    sender = PostingSender(PostingQueue(store), Clock())
    sender.queue.add(charge("999", 100))
    sender.next_record(True)
    outcome = sender.answer(pa("PA|RN999|ASNG|P#1|CTGUEST NOT FOUND|"))
    assert outcome is not None
    assert (outcome.room, outcome.status, outcome.text) == ("999", "NG", "GUEST NOT FOUND")
    assert sender.pending() == 0
    assert sender.next_record(True) is None, "completed, even before its deletion is on disk"
    done = sender.take_completed()
    sender.queue.complete(done)
    sender.committed(done)
    assert ([o.number for o in done], sender.queue.pending(), sender.completing) == ([1], 0, set())


def test_nothing_goes_out_while_the_link_forbids_postings(store: Store) -> None:
    sender = PostingSender(PostingQueue(store), Clock())
    sender.queue.add(charge("101", 100))
    assert sender.next_record(False) is None


def test_posting_numbers_are_never_reused_after_every_posting_was_answered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store"
    store = Store.open(path, map_size_mb=16)
    sender = PostingSender(PostingQueue(store), Clock())
    sender.queue.add(charge("101", 100))
    sender.next_record(True)
    sender.answer(pa("PA|RN101|ASOK|P#1|"))
    sender.queue.complete(sender.take_completed())
    store.close()
    store = Store.open(path, map_size_mb=16)
    try:
        assert PostingQueue(store).add(charge("101", 100)) == 2
    finally:
        store.close()


def test_a_posting_cannot_carry_its_own_number() -> None:
    with pytest.raises(PostingError):
        Posting.of("101", {"P#": 5})
