"""The PMS link service: keeps the FIAS link up, sends postings, keeps the rooms' state.

It receives its FiasClient and the RoomBook from the composition root and only reacts to
link events: a LinkUp (or the end of a night audit, a PA, a tick) lets the next posting out;
GI, GC, GO and RE records change the rooms, which are stored in LMDB (one key per room, the
rooms a record changed committed after it; a resync's swap records in one commit when it
ends), so that a resync is requested only while no room data is stored (new install or
lost data), never periodically.

DND set or cleared from a room's phone (``guest_dnd``) goes to the PMS as the door-sign
status (``RE|RN..|RS8|`` / ``RS10``, ``hotel.dnd``); so does the "off" status owed when a
room whose door sign was on is checked out or moved out of. Each status owed is stored in
the commit that stores the room's change (the latest per room, ``appliance/hotel/door_signs.py``)
and goes out, in order, while the link carries postings: after LA, and after a night audit
or a resync ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import msgpack

from appliance.hotel.business_date import BusinessDate
from appliance.hotel.door_signs import DoorSignQueue
from appliance.hotel.postings import (
    Posting,
    PostingOutcome,
    PostingQueue,
    PostingSender,
    Reports,
)
from appliance.hotel.rooms import RoomBook
from appliance.hotel.settings import DndSettings, PmsSettings
from appliance.store import StateStore, Store
from drivers.fias.client import FiasClient
from drivers.fias.grammar import Record, RecordPA, RecordRE
from drivers.fias.link import (
    LinkDown,
    LinkEvent,
    LinkState,
    LinkUp,
    NightAudit,
    ResyncCompleted,
    ResyncFailed,
)

log = logging.getLogger(__name__)

ROOM_PREFIX = "room:"
_TICK_S = 0.5


class PmsLinkService:
    """The hotel's PMS link: one component, owning the postings sender."""

    name = "pms-link"

    def __init__(
        self,
        settings: PmsSettings,
        store: Callable[[], Store],
        client: FiasClient,
        rooms: RoomBook,
        reports: Reports | None = None,
        business: BusinessDate | None = None,
        dnd: DndSettings | None = None,
    ) -> None:
        self._settings = settings
        self._dnd = dnd or DndSettings()
        self._door_signs: DoorSignQueue | None = None
        self._reports = reports
        self.business = business
        self.rooms = rooms
        # Features that act on records from the PMS (wake-ups), after the rooms applied them.
        self.record_listeners: list[Callable[[Record], None]] = []
        # The PBX's event stream (webhook): a refused posting is announced on it.
        self.alert: Callable[[str, dict[str, Any]], None] | None = None
        self._store = store
        self.client = client
        client.on_event = self._on_event
        self._sender: PostingSender | None = None
        self._state: StateStore | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._completed = asyncio.Event()
        self._commit: asyncio.Future[None] | None = None
        self.outcomes: list[PostingOutcome] = []

    async def start(self) -> None:
        store = self._store()
        self._state = StateStore(store, "hotel")
        self.rooms.load(stored_rooms(self._state))
        self._door_signs = DoorSignQueue(store)
        self._door_signs.load()
        self._sender = PostingSender(
            PostingQueue(
                store,
                reports=self._reports,
                business_date=self.business.current if self.business else None,
            ),
            time.monotonic,
            answer_timeout=self._settings.answer_timeout_s,
            retry_after=self._settings.retry_after_s,
        )
        self._tasks = [
            asyncio.create_task(self.client.run(), name="pms-link"),
            asyncio.create_task(self._ticker(), name="pms-postings"),
            asyncio.create_task(self._committer(), name="pms-postings-commit"),
        ]

    async def stop(self) -> None:
        await self.client.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._commit is not None:
            await self._commit
        self._commit_completed()

    def post(self, posting: Posting) -> int:
        """Queue a charge durably and send it when its turn comes; returns its P#."""
        number = self.sender().queue.add(posting)
        self._pump()
        return number

    def room_status(self, room: str, status: int) -> bool:
        """Send ``RE|RN<room>|RS<status>|`` now; False while the link cannot carry it."""
        return self.send_now(RecordRE.make({"RN": room, "RS": status}))

    def guest_dnd(self, room: str, on: bool) -> bool:
        """The guest's DND from the room's phone: stored, and its door sign sent to the PMS.

        False for a vacant room (nothing changes).
        """
        changed = self.rooms.guest_dnd(room, on)
        if changed is None:
            return False
        status = self._dnd.status_on if on else self._dnd.status_off
        log.info("room %s: door-sign status RS%d owed to the PMS", room, status)
        self._store_rooms({room: changed.document()}, {room: status})
        self._send_door_signs()
        if self.alert is not None:
            self.alert("hotel.dnd", {"room": room, "extension": self.rooms.extensions.get(room),
                       "dnd": on, "source": "phone"})  # fmt: skip
        return True

    def send_now(self, record: Record) -> bool:
        """Write ``record`` now (RE, WA); False while the link is not active or resyncing."""
        link = self.client.link
        if link.state is not LinkState.ACTIVE or link.resyncing:
            return False
        return self.client.send(record)

    def status(self) -> dict[str, Any]:
        """Link state, night audit, postings and door signs waiting, rooms known."""
        link = self.client.link
        rooms = self.rooms.rooms()
        return {
            "state": link.state.value,
            "night_audit": link.night_audit,
            "resyncing": link.resyncing,
            "postings_pending": self.sender().pending(),
            "posting_outstanding": self.sender().outstanding,
            "door_signs_pending": len(self.door_signs()),
            "rooms": len(rooms),
            "occupied": sum(1 for room in rooms if room.occupied),
            "business_date": self.business.current() if self.business else None,
        }

    def check(self) -> tuple[bool, str]:
        """Health: the link is up (postings are buffered meanwhile, so never fatal)."""
        return True, self.client.link.state.value

    def sender(self) -> PostingSender:
        """The postings sender; only valid between start and stop."""
        if self._sender is None:
            raise RuntimeError("PMS link service is not started")
        return self._sender

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            self._pump()

    async def _committer(self) -> None:
        while True:
            await self._completed.wait()
            self._completed.clear()
            outcomes = self.sender().take_completed()
            # Shielded: a stop waits for a commit already running instead of abandoning it.
            self._commit = asyncio.ensure_future(
                asyncio.to_thread(self.sender().queue.complete, outcomes)
            )
            await asyncio.shield(self._commit)
            self.sender().committed(outcomes)

    def _commit_completed(self) -> None:
        outcomes = self.sender().take_completed()
        self.sender().queue.complete(outcomes)
        self.sender().committed(outcomes)

    def _pump(self) -> None:
        self._send_door_signs()
        record = self.sender().next_record(self.client.link.postings_allowed)
        if record is not None and not self.client.send(record):
            self.sender().link_lost()

    def _on_event(self, event: LinkEvent) -> None:
        if isinstance(event, LinkUp):
            log.info("PMS link up")
            if self._settings.resync_when_empty and not len(self.rooms):
                self.client.request_resync()
        elif isinstance(event, LinkDown):
            log.warning("PMS link down: %s", event.reason)
            self.sender().link_lost()
        elif isinstance(event, NightAudit):
            log.info("PMS night audit %s", "started" if event.running else "ended")
            if not event.running:
                if self.business is not None:
                    self.business.audit_ended()
                self.sender().resume()
        elif isinstance(event, ResyncCompleted):
            self.rooms.apply_resync(event.rooms)
            self._store_rooms(self.rooms.documents())
            log.info("PMS resync: %d rooms", len(event.rooms))
        elif isinstance(event, ResyncFailed):
            log.warning("PMS did not start the requested resync")
        elif isinstance(event, RecordPA):
            self._answered(event)
        else:
            self._room_record(event)
        self._pump()

    def _room_record(self, record: Record) -> None:
        # Swap records (SF) are stored together when the resync ends (ResyncCompleted).
        signed = [n for n in (record.room, record.get("RO")) if n and self.rooms.room(n).door_sign]
        changed = self.rooms.apply(record)
        owed = {n: self._dnd.status_off for n in signed if not self.rooms.room(n).door_sign}
        for number in owed:
            log.info("room %s: door-sign status RS%d owed to the PMS", number, owed[number])
        if record.has("SF"):
            self._store_rooms({}, owed)
            return
        for listener in self.record_listeners:
            listener(record)
        if changed:
            log.info("PMS %s: room %s", record.record_id, ", ".join(changed))
        documents = {number: self.rooms.room(number).document() for number in changed}
        if documents or owed:
            self._store_rooms(documents, owed)

    def _send_door_signs(self) -> None:
        """Send the door-sign statuses owed, in order, while the link carries postings."""
        queue = self.door_signs()
        for sign in queue.owed():
            if not self.client.link.postings_allowed:
                return
            if not self.client.send(RecordRE.make({"RN": sign.room, "RS": sign.status})):
                return
            queue.sent(sign)
            log.info("room %s: door-sign status RS%d sent to the PMS", sign.room, sign.status)

    def door_signs(self) -> DoorSignQueue:
        """The door-sign statuses owed; only valid between start and stop."""
        if self._door_signs is None:
            raise RuntimeError("PMS link service is not started")
        return self._door_signs

    def _answered(self, answer: RecordPA) -> None:
        outcome = self.sender().answer(answer)
        if outcome is None:
            return
        self._completed.set()
        self.outcomes.append(outcome)
        level = logging.INFO if outcome.status == "OK" else logging.WARNING
        log.log(level, "posting P#%d for room %s: %s %s", outcome.number, outcome.room,
                outcome.status, outcome.text)  # fmt: skip
        if outcome.status != "OK" and self.alert is not None:
            self.alert("hotel.posting-refused", {"room": outcome.room, "status": outcome.status,
                       "posting_number": outcome.number, "text": outcome.text})  # fmt: skip

    def _store_rooms(
        self, documents: dict[str, dict[str, Any]], door_signs: dict[str, int] | None = None
    ) -> None:
        """Commit the rooms' documents (one key per room) and the door-sign statuses they
        owe the PMS, in one fsync'd transaction."""
        store = self._store()
        db = store.db("hotel")
        with store.write() as txn:
            for number, document in documents.items():
                txn.put((ROOM_PREFIX + number).encode(), msgpack.packb(document), db=db)
            signs = self.door_signs().owe_in(txn, door_signs or {})
        self.door_signs().staged(signs)


def stored_rooms(state: StateStore) -> dict[str, Any]:
    """Every room's stored document by room number."""
    return {key.removeprefix(ROOM_PREFIX): doc for key, doc in state.items(ROOM_PREFIX)}
