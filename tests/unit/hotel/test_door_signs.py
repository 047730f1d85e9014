"""The durable queue of door-sign statuses owed to the PMS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.hotel.door_signs import DoorSignQueue
from appliance.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", map_size_mb=16)
    yield opened
    opened.close()


def owe(queue: DoorSignQueue, store: Store, statuses: dict[str, int]) -> None:
    with store.write() as txn:
        signs = queue.owe_in(txn, statuses)
    queue.staged(signs)


def reopened(store: Store) -> DoorSignQueue:
    queue = DoorSignQueue(store)
    queue.load()
    return queue


def abort_after_owing(queue: DoorSignQueue, store: Store) -> None:
    with store.write() as txn:
        queue.owe_in(txn, {"101": 8})
        raise LookupError


def owed(queue: DoorSignQueue) -> list[tuple[str, int]]:
    return [(sign.room, sign.status) for sign in queue.owed()]


def test_owed_statuses_survive_a_restart_in_the_order_owed(store: Store) -> None:
    queue = reopened(store)
    owe(queue, store, {"0102": 8})
    owe(queue, store, {"101": 8})
    assert owed(reopened(store)) == [("0102", 8), ("101", 8)]


def test_the_latest_status_per_room_wins_and_takes_its_place_at_the_end(store: Store) -> None:
    queue = reopened(store)
    owe(queue, store, {"101": 8})
    owe(queue, store, {"102": 8})
    owe(queue, store, {"101": 10})
    assert owed(queue) == [("102", 8), ("101", 10)]
    assert owed(reopened(store)) == [("102", 8), ("101", 10)]


def test_a_sent_status_is_forgotten_durably(store: Store) -> None:
    queue = reopened(store)
    owe(queue, store, {"101": 8, "102": 8})
    queue.sent(queue.owed()[0])
    assert owed(queue) == [("102", 8)]
    assert owed(reopened(store)) == [("102", 8)]


def test_sending_an_older_status_keeps_the_newer_one(store: Store) -> None:
    queue = reopened(store)
    owe(queue, store, {"101": 8})
    older = queue.owed()[0]
    owe(queue, store, {"101": 10})
    queue.sent(older)
    assert owed(queue) == [("101", 10)]
    assert owed(reopened(store)) == [("101", 10)]


def test_sequence_numbers_keep_growing_after_a_restart(store: Store) -> None:
    queue = reopened(store)
    owe(queue, store, {"101": 8})
    queue.sent(queue.owed()[0])
    again = reopened(store)
    owe(again, store, {"102": 8})
    assert again.owed()[0].seq == 2


def test_a_status_is_not_owed_when_its_transaction_is_aborted(store: Store) -> None:
    queue = reopened(store)
    with pytest.raises(LookupError):
        abort_after_owing(queue, store)
    assert owed(queue) == []
    assert owed(reopened(store)) == []
