"""Meet-me room placement without processes: one worker per room while it has room, the
cascade to further workers with its link set-up, reservations, closing, a worker's death."""

from __future__ import annotations

from typing import Any

from appliance.pbx.dialplan import Decision
from appliance.pbx.rooms import RESERVATION_S, RoomService
from drivers.media.protocol import Command, RoomEvent, RoomLinkEvent
from tests.media_wire import wire


class FakeWorker:
    """A media worker that records the commands it is sent."""

    def __init__(self, port: int, free: int = 4) -> None:
        self.host = "127.0.0.1"
        self.address = f"127.0.0.1:{port}"
        self.free = free
        self.sent: list[dict[str, Any]] = []

    def send(self, command: Command) -> bool:
        self.sent.append(wire(command))
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def service(*frees: int) -> tuple[RoomService, list[FakeWorker], Clock]:
    workers = [FakeWorker(5080 + i, free) for i, free in enumerate(frees)]
    clock = Clock()
    return RoomService(lambda: workers, clock), workers, clock


def arrive(rooms: RoomService, worker: FakeWorker, room: str, call_id: str, members: int) -> None:
    """The worker took the call: its slot is used and it reports the room's count."""
    worker.free -= 1
    rooms.on_event(worker, RoomEvent(room, members, call_id))


def test_every_participant_goes_to_the_rooms_worker_while_it_has_a_free_slot() -> None:
    rooms, (w0, w1), _ = service(4, 4)
    placed = []
    for n in range(4):
        worker = rooms.place("1", f"call-{n}")
        assert isinstance(worker, FakeWorker)
        placed.append(worker)
        arrive(rooms, worker, "1", f"call-{n}", n + 1)
    assert placed == [w0] * 4
    assert w0.sent == w1.sent == []


def join(rooms: RoomService, worker: FakeWorker, call_id: str, members: int = 1) -> None:
    """Place a participant of room 1, expecting ``worker``, and let it arrive there."""
    assert rooms.place("1", call_id) is worker
    arrive(rooms, worker, "1", call_id, members)


def test_the_decision_names_the_worker_in_the_request_uri() -> None:
    rooms, (w0, _), _ = service(4, 2)
    decision = Decision("media", uri="room-7", route="media:room-7", recording="never")
    routed = rooms.route(decision, "call-1")
    assert (routed.action, routed.uri) == ("media", f"sip:room-7@{w0.address}")
    assert routed.route == "media:room-7"


def test_calls_decided_together_cannot_overfill_a_worker() -> None:
    rooms, (w0, w1), _ = service(4, 4)
    placed = [rooms.place("1", f"call-{n}") for n in range(5)]
    assert placed == [w0, w0, w0, w0, w1]


def test_a_full_worker_brings_the_least_loaded_worker_into_the_room_linked_to_the_hub() -> None:
    rooms, (w0, w1, w2), _ = service(1, 0, 0)
    join(rooms, w0, "a")
    w1.free, w2.free = 2, 3
    assert rooms.place("1", "b") is w2
    (opened,) = w0.sent
    assert opened == {"cmd": "room-link", "room": "1", "link": opened["link"]}
    name = opened["link"]
    rooms.on_event(w0, RoomLinkEvent(name, "1", 40000))
    assert w2.sent == [{"cmd": "room-link", "room": "1", "link": name, "peer": "127.0.0.1:40000"}]
    rooms.on_event(w2, RoomLinkEvent(name, "1", 40002))
    assert w0.sent[-1] == {"cmd": "room-link", "room": "1", "link": name,
                           "peer": "127.0.0.1:40002"}  # fmt: skip
    assert w1.sent == []


def test_a_room_refuses_the_next_participant_when_every_worker_is_full() -> None:
    rooms, _, _ = service(0, 0)
    decision = Decision("media", uri="room-1", route="media:room-1", recording="never")
    refused = rooms.route(decision, "call-1")
    assert (refused.action, refused.code, refused.reason) == ("reject", 486, "room-full")


def test_a_reservation_the_invite_never_redeems_lapses() -> None:
    rooms, (w0, w1), clock = service(1, 0)
    assert rooms.place("1", "lost") is w0
    w1.free = 4
    join(rooms, w1, "next")
    clock.now += RESERVATION_S + 1
    assert rooms.place("1", "later") is w0


def test_the_last_participant_leaving_closes_the_room_and_its_links() -> None:
    rooms, (w0, w1), _ = service(1, 0)
    join(rooms, w0, "a")
    w1.free = 4
    join(rooms, w1, "b")
    name = w0.sent[0]["link"]
    rooms.on_event(w0, RoomEvent("1", 0))
    assert "1" in rooms.rooms
    rooms.on_event(w1, RoomEvent("1", 0))
    assert "1" not in rooms.rooms
    assert w0.sent[-1] == w1.sent[-1] == {"cmd": "room-unlink", "link": name}


def test_when_the_hub_dies_the_next_worker_becomes_hub_and_the_rest_link_to_it() -> None:
    rooms, (w0, w1, w2), _ = service(1, 0, 0)
    join(rooms, w0, "a")
    w1.free = 1
    join(rooms, w1, "b")
    w2.free = 4
    join(rooms, w2, "c")
    to_w1, to_w2 = (c["link"] for c in w0.sent)
    rooms.worker_lost(w0)
    assert {"cmd": "room-unlink", "link": to_w1} in w1.sent
    assert {"cmd": "room-unlink", "link": to_w2} in w2.sent
    relink = w1.sent[-1]
    assert relink == {"cmd": "room-link", "room": "1", "link": relink["link"]}
    assert relink["link"] not in (to_w1, to_w2)
    rooms.on_event(w1, RoomLinkEvent(relink["link"], "1", 41000))
    assert w2.sent[-1]["peer"] == "127.0.0.1:41000"
    assert [w.address for w in rooms.rooms["1"].workers] == [w1.address, w2.address]


def test_a_dead_spokes_link_is_closed_at_the_hub_and_the_room_goes_on() -> None:
    rooms, (w0, w1), _ = service(1, 0)
    join(rooms, w0, "a")
    w1.free = 4
    join(rooms, w1, "b")
    name = w0.sent[0]["link"]
    rooms.worker_lost(w1)
    assert w0.sent[-1] == {"cmd": "room-unlink", "link": name}
    assert [w.address for w in rooms.rooms["1"].workers] == [w0.address]
