"""Wake-up calls: the durable book, and the service's decisions on fake workers and a fake link."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.hotel.rooms import RoomBook
from appliance.hotel.settings import WakeUpSettings
from appliance.hotel.wakeup_calls import WakeUpCallService
from appliance.hotel.wakeups import (
    WakeAnswer,
    WakeUp,
    WakeUpBook,
    WakeUpTimeError,
    due_at,
    next_occurrence,
)
from appliance.pbx.media import MediaPoolFullError
from appliance.store import Store
from drivers.fias.grammar import Record, parse_record
from drivers.media.protocol import Command
from tests.media_wire import ev, wire

T0 = dt.datetime(2026, 12, 7, 6, 30, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", map_size_mb=32)
    yield opened
    opened.close()


def test_due_time_keeps_the_seconds_and_refuses_garbage() -> None:
    assert due_at("261207", "063000", dt.UTC) == T0
    assert due_at("261207", "0630", dt.UTC) == T0
    with pytest.raises(WakeUpTimeError):
        due_at("261307", "0630", dt.UTC)


def test_a_guest_code_means_the_next_such_time() -> None:
    now = dt.datetime(2026, 12, 7, 7, 0, tzinfo=dt.UTC)
    assert next_occurrence("0630", now) == ("261208", "063000")
    assert next_occurrence("2215", now) == ("261207", "221500")
    with pytest.raises(WakeUpTimeError):
        next_occurrence("2570", now)


def test_the_book_clears_moves_and_owes_answers_only_to_the_pms(store: Any) -> None:
    book = WakeUpBook(lambda: store)
    book.set(WakeUp("0330", "261207", "063000", T0))
    book.set(WakeUp("0330", "261207", "070000", T0 + 1800))
    book.set(WakeUp("0330", "261208", "063000", T0 + 86400, source="phone"))
    assert book.clear("0330", "261207", "070000") == 1
    assert book.move("0330", "0331") == 2
    assert [(w.room, w.time) for w in book.pending()] == [("0331", "063000")] * 2
    for wake_up in book.pending():
        book.finish(wake_up, "OK")
    assert [a for _, a in book.answers()] == [WakeAnswer("0331", "261207", "063000", "OK")]
    book.answered(book.answers()[0][0])
    assert (book.pending(), book.answers()) == ([], [])


class Worker:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.reserved = 0

    def send(self, command: Command) -> bool:
        self.sent.append(wire(command))
        return True


class Pool:
    def __init__(self, worker: Worker | None) -> None:
        self.worker = worker

    def pick(self, slots: int = 1) -> Worker:
        if self.worker is None:
            raise MediaPoolFullError("no media worker has 1 free call slot(s)")
        return self.worker


class Speaker:
    async def render(self, text: str, voice: str) -> Path:
        return Path(f"/tts/{voice}/{len(text)}.wav")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Link:
    """The PMS link: what was written; ``rooms`` as the link service keeps them."""

    def __init__(self) -> None:
        self.up = True
        self.sent: list[str] = []
        self.rooms = RoomBook({"0330": "201"}, "international")
        self.rooms.apply(parse_record(b"GI|RN0330|G#1|GNGast|GLGE|"))

    def send_now(self, record: Record) -> bool:
        if self.up:
            self.sent.append(bytes(record).decode())
        return self.up


def make(store: Any, worker: Worker | None) -> tuple[WakeUpCallService, Link, Clock]:
    link, clock = Link(), Clock()
    rooms = link.rooms
    service = WakeUpCallService(
        WakeUpSettings(retries=1, retry_interval_s=60, front_desk="100"),
        WakeUpBook(lambda: store), rooms, link, lambda: Pool(worker), Speaker(), clock, "UTC",
    )  # fmt: skip
    return service, link, clock


def tick(service: WakeUpCallService) -> None:
    asyncio.run(service.tick())


def test_a_wr_is_called_in_the_guests_language_and_confirmed_with_one_wa(store: Any) -> None:
    worker = Worker()
    service, link, _ = make(store, worker)
    service.on_record(parse_record(b"WR|RN0330|DA261207|TI063000|"))
    tick(service)
    [call] = worker.sent
    assert (call["to"], call["ivr"], call["from_user"]) == ("201", "wakeup", "wake-up")
    tag = call["id"]
    assert service.on_media_event(
        worker, ev({"ev": "ivr", "state": "start", "id": "c1", "tag": tag})
    )
    assert worker.sent[-1]["prompt"]["file"].startswith("/tts/de/")
    service.on_media_event(worker, ev({"ev": "ivr", "state": "digit", "id": "c1", "digit": "1"}))
    assert worker.sent[-1] == {"cmd": "ivr-hangup", "id": "c1"}
    assert service.on_media_event(
        worker, ev({"ev": "leg", "id": tag, "state": "ended", "code": 200})
    )
    tick(service)
    assert link.sent == ["WA|RN0330|DA261207|TI063000|ASOK|"]
    tick(service)
    assert link.sent == ["WA|RN0330|DA261207|TI063000|ASOK|"]


def test_a_busy_room_is_retried_then_reported_busy_and_the_desk_is_called(store: Any) -> None:
    worker = Worker()
    service, link, clock = make(store, worker)
    service.on_record(parse_record(b"WR|RN0330|DA261207|TI063000|"))

    async def scenario() -> None:
        for _ in range(2):
            await service.tick()
            tag = worker.sent[-1]["id"]
            service.on_media_event(
                worker, ev({"ev": "leg", "id": tag, "state": "ended", "code": 486})
            )
            await service.tick()
            clock.now += 61
        await asyncio.sleep(0)
        await service.tick()

    alerts: list[tuple[str, dict[str, Any]]] = []
    service.alert = lambda kind, data: alerts.append((kind, data))
    asyncio.run(scenario())
    assert link.sent == ["WA|RN0330|DA261207|TI063000|ASBY|"]
    assert alerts == [("hotel.wake-up-failed", {"room": "0330", "date": "261207",
                       "time": "063000", "status": "BY", "attempts": 2})]  # fmt: skip
    assert [c["to"] for c in worker.sent if c["cmd"] == "originate"] == ["201", "201", "100"]


def test_no_worker_waits_and_an_unknown_event_is_left_to_others(store: Any) -> None:
    service, _, _ = make(store, None)
    service.on_record(parse_record(b"WR|RN0330|DA261207|TI063000|"))
    tick(service)
    assert service.book.pending()[0].attempts == 0
    assert not service.on_media_event(None, ev({"ev": "leg", "id": "op-1", "state": "ended"}))
    assert not service.on_media_event(
        None, ev({"ev": "ivr", "state": "start", "id": "x", "tag": None})
    )


class SlotPool:
    """Workers of ``slots`` call slots, free until reserved (the load reports reset them)."""

    def __init__(self, workers: list[Worker], slots: int) -> None:
        self.workers, self.slots = workers, slots

    def pick(self, slots: int = 1) -> Worker:
        free = [w for w in self.workers if self.slots - w.reserved >= slots]
        if not free:
            raise MediaPoolFullError("no media worker has 1 free call slot(s)")
        return max(free, key=lambda w: self.slots - w.reserved)


def test_wake_ups_due_at_once_take_the_free_slots_and_a_full_workers_refusal_is_no_attempt(
    store: Any,
) -> None:
    rooms = RoomBook({f"0{n}": f"20{n}" for n in range(1, 7)}, "international")
    workers = [Worker(), Worker()]
    pool = SlotPool(workers, 2)
    service = WakeUpCallService(
        WakeUpSettings(retries=1, retry_interval_s=60), WakeUpBook(lambda: store), rooms,
        Link(), lambda: pool, Speaker(), Clock(), "UTC",
    )  # fmt: skip
    for n in range(1, 7):
        service.on_record(parse_record(f"WR|RN0{n}|DA261207|TI063000|".encode()))
    tick(service)
    assert [len(w.sent) for w in workers] == [2, 2], "as many calls as free slots"
    assert sorted(w.attempts for w in service.book.pending()) == [0, 0, 1, 1, 1, 1]
    refused = workers[0].sent[0]
    assert service.on_media_event(
        workers[0],
        ev(
            {
                "ev": "leg",
                "id": refused["id"],
                "state": "ended",
                "code": 486,
                "reason": "worker-full",
            }
        ),
    )
    assert sorted(w.attempts for w in service.book.pending()) == [0, 0, 0, 1, 1, 1]
    workers[0].reserved, workers[1].reserved = 1, 2  # their load reports: 1 and 2 calls
    assert not service.on_media_event(workers[0], ev({"ev": "load", "calls": 1, "capacity": 2}))
    assert service._wake.is_set(), "a slot freed while calls wait: the next tick runs now"
    tick(service)
    assert [len(w.sent) for w in workers] == [3, 2]
    assert [c["to"] for c in workers[0].sent].count(refused["to"]) == 2, "placed again"
    assert sorted(w.attempts for w in service.book.pending()) == [0, 0, 1, 1, 1, 1]


def test_check_out_and_wc_clear_and_a_bad_wr_is_answered_unprocessable(store: Any) -> None:
    service, link, _ = make(store, Worker())
    for raw in (b"WR|RN0330|DA261208|TI063000|", b"WR|RN0330|DA261209|TI063000|",
                b"WC|RN0330|DA261208|TI063000|"):  # fmt: skip
        service.on_record(parse_record(raw))
    assert service.book.pending() == [WakeUp("0330", "261209", "063000", T0 + 2 * 86400)]
    check_out = parse_record(b"GO|RN0330|G#1|")
    link.rooms.apply(check_out)
    service.on_record(check_out)
    assert service.book.pending() == []
    service.on_record(parse_record(b"WR|RN0330|DA26120|TI99|"))
    tick(service)
    assert link.sent == ["WA|RN0330|DA26120|TI99|ASUR|"]


def test_a_wake_up_found_long_overdue_is_reported_not_placed(store: Any) -> None:
    worker = Worker()
    service, link, clock = make(store, worker)
    service.on_record(parse_record(b"WR|RN0330|DA261207|TI063000|"))
    clock.now += 3600
    tick(service)
    tick(service)
    assert worker.sent == []
    assert link.sent == ["WA|RN0330|DA261207|TI063000|ASNR|"]


def test_a_guest_sets_and_clears_a_wake_up_from_the_room_phone_without_a_wa(store: Store) -> None:
    worker = Worker()
    service, link, clock = make(store, worker)
    assert service.phone_wake_up("0330", "0630")
    assert not service.phone_wake_up("0330", "2599")
    [wake_up] = service.book.pending()
    assert (wake_up.time, wake_up.source) == ("063000", "phone")
    service.on_record(parse_record(b"WR|RN0330|DA261209|TI070000|"))
    assert service.phone_clear("0330")
    assert not service.phone_clear("0330")
    assert [w.source for w in service.book.pending()] == ["pms"]
    service.phone_wake_up("0330", "0630")
    due = service.book.pending()[0]
    clock.now = due.due
    tick(service)
    tag = worker.sent[-1]["id"]
    service.on_media_event(worker, ev({"ev": "ivr", "state": "start", "id": "c2", "tag": tag}))
    service.on_media_event(worker, ev({"ev": "ivr", "state": "digit", "id": "c2", "digit": "1"}))
    service.on_media_event(worker, ev({"ev": "leg", "id": tag, "state": "ended", "code": 200}))
    tick(service)
    assert link.sent == []
    assert [w.source for w in service.book.pending()] == ["pms"]


def fail_busy(service: WakeUpCallService, worker: Worker, clock: Clock) -> None:
    """Both calls of the room's wake-up end busy: the wake-up fails."""
    service.on_record(parse_record(b"WR|RN0330|DA261207|TI063000|"))
    for _ in range(2):
        tick(service)
        tag = worker.sent[-1]["id"]
        service.on_media_event(worker, ev({"ev": "leg", "id": tag, "state": "ended", "code": 486}))
        clock.now += 61


def on_pool(store: Any, pool: Pool, link: Link, clock: Clock) -> WakeUpCallService:
    return WakeUpCallService(
        WakeUpSettings(retries=1, retry_interval_s=60, front_desk="100"),
        WakeUpBook(lambda: store), link.rooms, link, lambda: pool, Speaker(), clock, "UTC",
    )  # fmt: skip


def desk_calls(worker: Worker) -> list[dict[str, Any]]:
    return [c for c in worker.sent if c["cmd"] == "originate" and c["to"] == "100"]


def test_the_desk_notice_waits_for_a_free_slot_and_is_placed_once(store: Any) -> None:
    worker = Worker()
    pool = Pool(worker)
    link, clock = Link(), Clock()
    service = on_pool(store, pool, link, clock)
    fail_busy(service, worker, clock)
    pool.worker = None
    tick(service)
    assert desk_calls(worker) == []
    assert [n.room for _, n in service.book.notices()] == ["0330"], "kept while no slot is free"
    assert service._short_of_slots, "a freed slot wakes the scheduler"
    pool.worker = worker
    tick(service)
    tick(service)
    [call] = desk_calls(worker)
    assert call["display"] == "Wake-up call failed"
    refused = {"ev": "leg", "id": call["id"], "state": "ended", "reason": "worker-full"}
    assert service.on_media_event(worker, ev(refused))
    tick(service)
    assert len(desk_calls(worker)) == 2, "a full worker's refusal: placed again"
    assert service.on_media_event(
        worker, ev({"ev": "leg", "id": desk_calls(worker)[1]["id"], "state": "ended", "code": 200})
    )
    tick(service)
    assert len(desk_calls(worker)) == 2
    assert service.book.notices() == []
    assert link.sent == ["WA|RN0330|DA261207|TI063000|ASBY|"]


def test_a_desk_notice_owed_at_a_restart_is_placed_by_the_next_service(store: Any) -> None:
    worker = Worker()
    first, _, clock = make(store, worker)
    fail_busy(first, worker, clock)
    assert desk_calls(worker) == [], "the failure itself places nothing: the next tick does"
    later = Worker()
    second, _, _ = make(store, later)
    tick(second)
    tick(second)
    assert [c["to"] for c in later.sent] == ["100"]
