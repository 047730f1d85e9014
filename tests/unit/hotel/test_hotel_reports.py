"""What the appliance tells HQ of its hotel: one record per answered posting and per wake-up.

Each record goes into the ``hotel`` outbox in the commit that ends the posting or the
wake-up, so it exists exactly when the posting or wake-up is gone from the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from appliance.hotel.postings import Posting, PostingQueue, PostingSender
from appliance.hotel.reports import OUTBOX, HqReports
from appliance.hotel.settings import WakeUpSettings
from appliance.hotel.wakeup_calls import WakeUpCallService
from appliance.hotel.wakeups import WakeUp, WakeUpBook
from appliance.store import Outbox, Store
from drivers.fias.grammar import RecordPA, parse_record
from drivers.sync.hotel import HotelPosting, WakeUpOutcome, parse_hotel_record
from tests.media_wire import ev
from tests.unit.fias.test_hotel_wakeups import T0, Clock, Link, Pool, Speaker, Worker

WALL = 1_796_624_880.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", map_size_mb=32)
    Outbox(opened, OUTBOX)  # opened at start, as the store component does
    yield opened
    opened.close()


def reported(store: Store) -> list[HotelPosting | WakeUpOutcome]:
    return [parse_hotel_record(raw) for _, raw in Outbox(store, OUTBOX).read_batch()]


def pa(text: str) -> RecordPA:
    record = parse_record(text.encode())
    assert isinstance(record, RecordPA)
    return record


def answer_all(sender: PostingSender, answers: list[str]) -> None:
    for text in answers:
        assert sender.next_record(True) is not None
        sender.answer(pa(text))
    sender.queue.complete(sender.take_completed())


def test_an_answered_posting_is_reported_with_its_fields_once_it_leaves_the_queue(
    store: Store,
) -> None:
    queue = PostingQueue(
        store, clock=lambda: WALL, reports=HqReports(lambda: store, "UTC").postings
    )
    sender = PostingSender(queue, lambda: 0.0)
    fields = {"PT": "T", "DA": "261207", "TI": "125801", "DU": "000345", "DD": "0301234567"}
    queue.add(Posting.of("0330", fields))
    queue.add(Posting.of("101", {"PT": "M", "MA": "12", "M#": "2"}))
    assert sender.next_record(True) is not None
    sender.answer(pa("PA|RN0330|ASOK|P#1|"))
    assert reported(store) == [], "reported before the posting's deletion is committed"
    answer_all(sender, ["PA|RN101|ASNG|P#2|CTGUEST NOT FOUND|"])
    first, second = reported(store)
    assert isinstance(first, HotelPosting)
    assert isinstance(second, HotelPosting)
    assert (first.id, first.room, first.posting_type, first.duration_s, first.dialled) == (
        f"P1-{int(WALL * 1000)}",
        "0330",
        "T",
        225,
        "0301234567",
    )
    assert (first.date, first.time, first.answer, first.queued_at) == (
        "261207",
        "125801",
        "OK",
        WALL,
    )
    assert (second.posting_number, second.article, second.quantity, second.answer) == (
        2,
        "12",
        2,
        "NG",
    )
    assert second.answer_text == "GUEST NOT FOUND"
    assert queue.pending() == 0


def test_a_night_audit_answer_reports_nothing_until_the_final_one(store: Store) -> None:
    queue = PostingQueue(store, reports=HqReports(lambda: store, "UTC").postings)
    sender = PostingSender(queue, lambda: 0.0, retry_after=0.0)
    queue.add(Posting.of("101", {"PT": "C", "TA": 1050}))
    answer_all(sender, ["PA|RN101|ASNA|P#1|"])
    assert reported(store) == []
    answer_all(sender, ["PA|RN101|ASOK|P#1|"])
    [posting] = reported(store)
    assert isinstance(posting, HotelPosting)
    assert (posting.amount, posting.answer) == (1050, "OK")


def test_a_posting_queued_before_queue_times_were_stored_is_still_reported(store: Store) -> None:
    Outbox(store, "pms-posting").append(msgpack.packb(["101", [["PT", "C"], ["TA", "200"]]]))
    queue = PostingQueue(
        store, clock=lambda: WALL, reports=HqReports(lambda: store, "UTC").postings
    )
    answer_all(PostingSender(queue, lambda: 0.0), ["PA|RN101|ASOK|P#1|"])
    [posting] = reported(store)
    assert isinstance(posting, HotelPosting)
    assert (posting.amount, posting.queued_at) == (200, WALL)


def test_a_posting_our_data_cannot_describe_is_logged_and_the_queue_moves_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    queue = PostingQueue(store, reports=HqReports(lambda: store, "UTC").postings)
    queue.add(Posting.of("101", {"PT": "X"}))
    answer_all(PostingSender(queue, lambda: 0.0), ["PA|RN101|ASOK|P#1|"])
    assert (reported(store), queue.pending()) == ([], 0)
    assert [r.error_id for r in caplog.records if hasattr(r, "error_id")] == [
        "hotel-report-invalid"
    ]


def make_service(store: Store, worker: Worker) -> tuple[WakeUpCallService, Clock]:
    link, clock = Link(), Clock()
    book = WakeUpBook(lambda: store, HqReports(lambda: store, "UTC").wake_up, now=lambda: clock.now)
    service = WakeUpCallService(
        WakeUpSettings(retries=1, retry_interval_s=60, front_desk="100"),
        book, link.rooms, link, lambda: Pool(worker), Speaker(), clock, "UTC",
    )  # fmt: skip
    return service, clock


def test_a_busy_wake_up_is_reported_once_with_its_attempts_and_the_front_desk(
    store: Store,
) -> None:
    worker = Worker()
    service, clock = make_service(store, worker)
    service.on_record(parse_record(b"WR|RN0330|DA261207|TI063000|"))

    async def scenario() -> None:
        for _ in range(2):
            await service.tick()
            tag = worker.sent[-1]["id"]
            assert reported(store) == [], "an intermediate result reached HQ"
            service.on_media_event(
                worker, ev({"ev": "leg", "id": tag, "state": "ended", "code": 486})
            )
            clock.now += 61
        await asyncio.sleep(0)
        await service.tick()

    asyncio.run(scenario())
    [outcome] = reported(store)
    assert isinstance(outcome, WakeUpOutcome)
    assert (outcome.room, outcome.date, outcome.time, outcome.due_at) == (
        "0330",
        "261207",
        "063000",
        T0,
    )
    assert (outcome.result, outcome.attempts, outcome.front_desk_alerted) == ("BY", 2, True)
    assert (outcome.source, outcome.ended_at) == ("pms", T0 + 61)


def test_a_confirmed_guest_wake_up_and_an_unprocessable_wr_are_reported(store: Store) -> None:
    worker = Worker()
    service, clock = make_service(store, worker)
    assert service.phone_wake_up("0330", "0630")
    service.on_record(parse_record(b"WR|RN0330|DA26120|TI99|"))
    clock.now = service.book.pending()[0].due
    asyncio.run(service.tick())
    tag = worker.sent[-1]["id"]
    events: list[dict[str, Any]] = [
        {"ev": "ivr", "state": "start", "id": "c1", "tag": tag},
        {"ev": "ivr", "state": "digit", "id": "c1", "digit": "1"},
        {"ev": "leg", "id": tag, "state": "ended", "code": 200},
    ]
    for event in events:
        service.on_media_event(worker, ev(event))
    outcomes = reported(store)
    assert [(o.room, o.result, o.source) for o in outcomes if isinstance(o, WakeUpOutcome)] == [
        ("0330", "UR", "pms"),
        ("0330", "OK", "phone"),
    ]
    assert isinstance(outcomes[0], WakeUpOutcome)
    assert outcomes[0].due_at is None


def test_without_reports_nothing_is_written_for_hq(store: Store) -> None:
    book = WakeUpBook(lambda: store)
    book.finish(WakeUp("101", "261207", "063000", T0, attempts=1), "OK")
    assert reported(store) == []
