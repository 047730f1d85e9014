"""Guest rooms: who is checked into each room and what its phone may do, kept from the PMS.

Theory of operation. A :class:`RoomBook` is pure state: the PMS link service hands it every
GI, GC, GO and RE record and each resync snapshot, then stores :meth:`RoomBook.documents` in
LMDB; the hotel's class-of-service decider reads it on every call. A room is keyed by its
FIAS room number, kept as a string (``0330`` is not ``330``); ``hotel.rooms`` maps it to the
extension of the room's phone.

Semantics (the PMS reference, guest data):

- An online GI to a vacant room sets every status: the guest, the class of service (``CS``,
  else ``hotel.checked_in_cos``), DND and the message lamp off. A GI with ``SF`` (resync), a
  sharer's GI to an occupied room and a GC change only the fields they list.
- GO with ``G#`` removes that guest; the room is vacant once nobody is left. A vacant room is
  barred (class of service ``internal``), with DND, the message lamp and the name cleared.
- GC with ``RO`` moves the guest from room ``RO`` to ``RN``; a move into a vacant room
  carries the old room's statuses over, and an old room left empty becomes vacant.
- RE sets ``CS``, ``DN`` (DND) and ``ML`` (message lamp).
- The guest sets or clears DND from the room's phone (:meth:`RoomBook.guest_dnd`); FIAS
  cannot send ``DN`` to the PMS, so the PMS is told by the door-sign status (``RS``), and
  ``door_sign`` remembers that it was told "DND on": a check-out (or a move out) of such a
  room owes the PMS the "off" status. A move carries DND into a vacant room, not the
  door sign (the PMS was told about the old room).

A ``CS`` outside 0-3 is logged and ignored; the rest of the record still applies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

from appliance.pbx.settings import CosLevel
from drivers.fias import grammar as g
from drivers.fias.link import RoomState

log = logging.getLogger(__name__)

# FIAS CS (Appendix B): 0 barred / hotel-internal only, 1 local, 2 national, 3 unrestricted.
CS_LEVELS: dict[str, CosLevel] = {
    "0": "internal",
    "1": "local",
    "2": "national",
    "3": "international",
}


@dataclass(frozen=True)
class Guest:
    """A guest checked into a room."""

    reservation: str
    name: str = ""
    language: str = ""


@dataclass(frozen=True)
class Room:
    """A room's guest state; vacant when it has no guest."""

    room: str
    guests: tuple[Guest, ...] = ()
    cos: CosLevel = "internal"
    dnd: bool = False
    message_lamp: bool = False
    door_sign: bool = False

    @property
    def occupied(self) -> bool:
        """Whether anyone is checked in."""
        return bool(self.guests)

    @property
    def guest_name(self) -> str:
        """The first guest's name (the phone's display name), empty when vacant."""
        return self.guests[0].name if self.guests else ""

    def document(self) -> dict[str, Any]:
        """The stored (msgpack) form."""
        guests = [
            {"reservation": x.reservation, "name": x.name, "language": x.language}
            for x in self.guests
        ]
        return {"room": self.room, "guests": guests, "cos": self.cos, "dnd": self.dnd,
                "message_lamp": self.message_lamp, "door_sign": self.door_sign}  # fmt: skip

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Room:
        """A room from its stored form."""
        guests = tuple(Guest(x["reservation"], x["name"], x["language"]) for x in doc["guests"])
        cos = cast(CosLevel, doc.get("cos", "international" if guests else "internal"))
        return cls(doc["room"], guests, cos, bool(doc.get("dnd")), bool(doc.get("message_lamp")),
                   bool(doc.get("door_sign")))  # fmt: skip


class RoomBook:
    """Every room's guest state; rooms are added by the PMS's records or the configuration."""

    def __init__(self, extensions: Mapping[str, str], checked_in_cos: CosLevel) -> None:
        self.extensions = dict(extensions)
        self._rooms_of = {extension: room for room, extension in extensions.items()}
        self._checked_in_cos = checked_in_cos
        self._rooms: dict[str, Room] = {}

    def load(self, documents: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the state with stored documents."""
        self._rooms = {number: Room.from_document(doc) for number, doc in documents.items()}

    def documents(self) -> dict[str, dict[str, Any]]:
        """Every room known from the PMS, in stored form."""
        return {number: room.document() for number, room in self._rooms.items()}

    def __len__(self) -> int:
        return len(self._rooms)

    def rooms(self) -> list[Room]:
        """Every room: those the PMS reported and the configured ones (vacant until then)."""
        numbers = sorted(set(self._rooms) | set(self.extensions))
        return [self.room(number) for number in numbers]

    def room(self, number: str) -> Room:
        """The state of room ``number`` (vacant when nothing is known of it)."""
        return self._rooms.get(number) or Room(number)

    def for_extension(self, extension: str) -> Room | None:
        """The room whose phone is ``extension``, None for an extension that is no room."""
        number = self._rooms_of.get(extension)
        return None if number is None else self.room(number)

    def apply(self, record: g.Record) -> list[str]:
        """Apply a GI, GC, GO or RE; returns the rooms it changed (none for other records)."""
        number = record.room
        if number is None:
            return []
        if isinstance(record, g.RecordGI):
            return self._check_in(number, record)
        if isinstance(record, g.RecordGO):
            return self._check_out(number, record.reservation)
        if isinstance(record, g.RecordGC):
            return self._change(number, record)
        if isinstance(record, g.RecordRE):
            return self._equipment(number, record)
        return []

    def guest_dnd(self, number: str, on: bool) -> Room | None:
        """The guest's DND from the room's phone (door sign on with it); None when vacant."""
        current = self.room(number)
        if not current.occupied:
            return None
        self._rooms[number] = replace(current, dnd=on, door_sign=on)
        return self._rooms[number]

    def apply_resync(self, snapshot: Mapping[str, RoomState]) -> None:
        """A resync's snapshot is the truth about who is in which room."""
        for number, state in snapshot.items():
            current = self.room(number)
            guests = tuple(Guest(x.reservation, x.name, x.language) for x in state.guests)
            if not guests:
                self._rooms[number] = Room(number)
            elif current.occupied:
                self._rooms[number] = replace(current, guests=guests)
            else:
                self._rooms[number] = Room(number, guests, self._checked_in_cos)

    def _check_in(self, number: str, record: g.RecordGI) -> list[str]:
        current = self.room(number)
        guest = _merged(_guest_of(current, record.reservation), record)
        if not current.occupied and not record.swap:
            cos = self._cos(record) or self._checked_in_cos
            self._rooms[number] = Room(number, (guest,), cos)
            return [number]
        cos = self._cos(record) or (current.cos if current.occupied else self._checked_in_cos)
        self._rooms[number] = replace(current, guests=_with(current, guest), cos=cos)
        return [number]

    def _check_out(self, number: str, reservation: str | None) -> list[str]:
        current = self.room(number)
        left = tuple(x for x in current.guests if reservation and x.reservation != reservation)
        self._rooms[number] = replace(current, guests=left) if left else Room(number)
        return [number]

    def _change(self, number: str, record: g.RecordGC) -> list[str]:
        old = record.old_room
        if old is None or old == number:
            current = self.room(number)
            guest = _merged(_guest_of(current, record.reservation), record)
            cos = self._cos(record) or current.cos
            self._rooms[number] = replace(current, guests=_with(current, guest), cos=cos)
            return [number]
        source, target = self.room(old), self.room(number)
        guest = _merged(_guest_of(source, record.reservation), record)
        self._check_out(old, guest.reservation)
        base = target if target.occupied else replace(source, room=number, guests=(),
                                                      door_sign=False)  # fmt: skip
        cos = self._cos(record) or base.cos
        self._rooms[number] = replace(base, guests=_with(base, guest), cos=cos)
        return [old, number]

    def _equipment(self, number: str, record: g.RecordRE) -> list[str]:
        current = self.room(number)
        cos = self._cos(record) or current.cos
        dnd = _flag(record.get("DN"), current.dnd)
        lamp = _flag(record.get("ML"), current.message_lamp)
        self._rooms[number] = replace(current, cos=cos, dnd=dnd, message_lamp=lamp)
        return [number]

    def _cos(self, record: g.Record) -> CosLevel | None:
        value = record.get("CS")
        if value is None or value == "":
            return None
        level = CS_LEVELS.get(value)
        if level is None:
            log.warning("PMS class of service %r for room %s is not 0-3; ignored: %s",
                        value, record.room, bytes(record).decode("latin-1"))  # fmt: skip
        return level


def _guest_of(room: Room, reservation: str | None) -> Guest:
    for guest in room.guests:
        if guest.reservation == (reservation or ""):
            return guest
    return Guest(reservation or "")


def _merged(guest: Guest, record: g.GuestRecord) -> Guest:
    name, language = record.guest_name, record.language
    return Guest(
        guest.reservation,
        guest.name if name is None else name,
        guest.language if language is None else language,
    )


def _with(room: Room, guest: Guest) -> tuple[Guest, ...]:
    others: Iterable[Guest] = (x for x in room.guests if x.reservation != guest.reservation)
    return (*others, guest)


def _flag(value: str | None, current: bool) -> bool:
    if value in ("Y", "N"):
        return value == "Y"
    return current
