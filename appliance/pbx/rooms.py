"""Meet-me rooms: which media worker takes each participant, and the links between workers.

Theory of operation. Kamailio asks the appliance where every call goes; for ``room-<n>``
the answer names the worker (``sip:room-<n>@<worker>``) instead of leaving the choice to
the dispatcher, so a room's participants meet in one conference bridge. A room fills its
workers in the order they joined it. When every one of them is full, the live media
worker with the most free slots joins the room and is linked to the room's first worker
(its hub): a star, so audio between any two participants crosses at most two links and
the links form no loop. A link is a pair of conference ports wired back to back over UDP
(``drivers/media/rooms.py``); it takes no call slot, so a room holds four participants
per worker (20 on five workers).

Counting: each worker reports how many calls a room holds there (event ``room``, with
the Call-ID of a call that joined). Between the answer to Kamailio and that report, the
call holds a reservation on its worker, so calls arriving together cannot overfill it;
a reservation the INVITE never redeemed lapses after ``RESERVATION_S``.

A room whose last participant left is closed (links unlinked). A worker that dies
leaves every room it was in: the links to it are closed at their other ends, and if it
was a hub, the room's next worker becomes the hub and the remaining workers are linked
to it, so the participants left keep hearing each other.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision
from drivers.media.protocol import Command, RoomEvent, RoomLinkEvent, RoomLinkOpen, RoomUnlink

log = logging.getLogger(__name__)

RESERVATION_S = 10.0
ROOM_USER = "room-"


class RoomWorker(Protocol):
    """What rooms need of a media worker (``appliance.pbx.media.MediaWorker``)."""

    @property
    def address(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def free(self) -> int: ...

    def send(self, command: Command) -> bool: ...


@dataclass
class Link:
    """A link between a room's hub and one of its other workers."""

    name: str
    room: str
    hub: RoomWorker
    spoke: RoomWorker


@dataclass
class Room:
    """A meet-me room: its workers in join order (the first is the hub) and their links."""

    name: str
    workers: list[RoomWorker] = field(default_factory=list)
    members: dict[str, int] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)


@dataclass(frozen=True)
class Reservation:
    """A slot promised to a call Kamailio is about to send to ``worker``."""

    room: str
    worker: str
    expires: float


class RoomService:
    """Places meet-me participants on workers and links the workers of a room."""

    def __init__(
        self,
        workers: Callable[[], Sequence[RoomWorker]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._workers = workers
        self._clock = clock
        self.rooms: dict[str, Room] = {}
        self._reserved: dict[str, Reservation] = {}
        self._links: dict[str, Link] = {}
        self._serial = itertools.count(1)

    def route(self, decision: Decision, call_id: str) -> Decision:
        """A ``room-<n>`` media decision sent to the room's worker, or refused when full."""
        worker = self.place(decision.uri[len(ROOM_USER) :], call_id)
        if worker is None:
            return Decision("reject", code=486, reason="room-full", route=decision.route)
        return replace(decision, uri=f"sip:{decision.uri}@{worker.address}")

    def place(self, name: str, call_id: str) -> RoomWorker | None:
        """The worker that takes the next participant of room ``name`` (None: all full)."""
        self._expire()
        room = self.rooms.get(name) or Room(name)
        worker = next((w for w in room.workers if self._free(w) > 0), None)
        if worker is None:
            worker = self._newcomer(room)
            if worker is None:
                return None
            self._add(room, worker)
        self.rooms[name] = room
        self._reserved[call_id] = Reservation(name, worker.address, self._clock() + RESERVATION_S)
        return worker

    def on_event(self, worker: RoomWorker, event: RoomEvent | RoomLinkEvent) -> None:
        """A worker's ``room`` or ``room-link`` event."""
        if isinstance(event, RoomEvent):
            self._counted(worker, event.room, event.members, event.call_id)
        else:
            self._link_opened(worker, event.link, event.port)

    def worker_lost(self, worker: RoomWorker) -> None:
        """A worker exited: take it out of its rooms and relink what is left."""
        for call_id, held in list(self._reserved.items()):
            if held.worker == worker.address:
                del self._reserved[call_id]
        for room in list(self.rooms.values()):
            if worker in room.workers:
                self._leave(room, worker)

    def _free(self, worker: RoomWorker) -> int:
        held = sum(1 for r in self._reserved.values() if r.worker == worker.address)
        return worker.free - held

    def _newcomer(self, room: Room) -> RoomWorker | None:
        others = [w for w in self._workers() if w not in room.workers and self._free(w) > 0]
        return max(others, key=self._free, default=None)

    def _add(self, room: Room, worker: RoomWorker) -> None:
        room.workers.append(worker)
        room.members.setdefault(worker.address, 0)
        if len(room.workers) > 1:
            self._link(room, room.workers[0], worker)

    def _link(self, room: Room, hub: RoomWorker, spoke: RoomWorker) -> None:
        link = Link(f"{room.name}-{next(self._serial)}", room.name, hub, spoke)
        room.links[spoke.address] = self._links[link.name] = link
        hub.send(RoomLinkOpen(room=room.name, link=link.name))
        log.info("room %s spans %d workers", room.name, len(room.workers),
                 extra={"link": link.name, "worker": spoke.address})  # fmt: skip

    def _link_opened(self, worker: RoomWorker, name: str, port: int) -> None:
        link = self._links.get(name)
        if link is None or not port:
            return
        if worker is link.hub:
            peer, other = link.spoke, f"{link.hub.host}:{port}"
        elif worker is link.spoke:
            peer, other = link.hub, f"{link.spoke.host}:{port}"
        else:
            return
        peer.send(RoomLinkOpen(room=link.room, link=name, peer=other))

    def _counted(self, worker: RoomWorker, name: str, members: int, call_id: str) -> None:
        self._reserved.pop(call_id, None)
        room = self.rooms.get(name)
        if room is None or worker not in room.workers:
            return
        room.members[worker.address] = members
        self._close_if_empty(room)

    def _close_if_empty(self, room: Room) -> None:
        if any(room.members.values()) or any(r.room == room.name for r in self._reserved.values()):
            return
        for link in list(room.links.values()):
            self._unlink(room, link)
        del self.rooms[room.name]

    def _leave(self, room: Room, worker: RoomWorker) -> None:
        was_hub = room.workers[0] is worker
        room.workers.remove(worker)
        room.members.pop(worker.address, None)
        for link in list(room.links.values()):
            if worker in (link.hub, link.spoke):
                self._unlink(room, link)
        if was_hub:
            for spoke in room.workers[1:]:
                self._link(room, room.workers[0], spoke)
        if not room.workers:
            del self.rooms[room.name]
        else:
            self._close_if_empty(room)

    def _unlink(self, room: Room, link: Link) -> None:
        room.links.pop(link.spoke.address, None)
        self._links.pop(link.name, None)
        for end in (link.hub, link.spoke):
            end.send(RoomUnlink(link.name))

    def _expire(self) -> None:
        now = self._clock()
        for call_id, held in list(self._reserved.items()):
            if held.expires <= now:
                del self._reserved[call_id]
                room = self.rooms.get(held.room)
                if room is not None:
                    self._close_if_empty(room)


class RoomPlacement:
    """The routing-chain decider that sends a meet-me room call to its room's worker."""

    name = "rooms"
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(self, rooms: Callable[[], RoomService]) -> None:
        self._rooms = rooms

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """``decision`` aimed at the room's worker when it is a room call, else unchanged."""
        if decision is None or decision.action != "media":
            return decision
        if not decision.uri.startswith(ROOM_USER):
            return decision
        return self._rooms().route(decision, query.call_id)
