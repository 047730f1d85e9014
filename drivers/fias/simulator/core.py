"""The simulated PMS's logic (sans-I/O): rooms, guests, bookings, and what it answers.

Theory of operation. The core sees every record the vendor sends (all kept in ``received``)
and returns the records to send back, each with a delay. It plays the IFC's side of the link
start-up (LS on connect; LA after the vendor's LA), answers alive checks, streams a resync
(DS, one GI or GO with SF per room, DE), and books postings: a P# is booked at most once,
a repeated P# is answered again with the first answer and counted in ``repeats``; a PS
for a new P# while another is unanswered is counted in ``overlaps`` (the vendor broke the
one-outstanding rule). During a
night audit postings are answered NA and not booked. A posting for a room checked out since
is booked to the room's last guest (a late charge). ``answer_mode`` scripts the PA: ``normal``,
``slow`` (after ``answer_delay``), ``never`` (booked, not answered) or ``twice``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from drivers.fias import grammar as g

AnswerMode = Literal["normal", "slow", "never", "twice"]
ANSWER_MODES: tuple[str, ...] = ("normal", "slow", "never", "twice")
Reply = tuple[float, g.Record]


@dataclass
class SimGuest:
    """A checked-in guest."""

    reservation: str
    name: str
    language: str = "EA"


@dataclass
class Booking:
    """A posting the PMS booked to a folio."""

    number: int
    room: str
    reservation: str
    status: str
    record: str


@dataclass
class PmsCore:
    """The simulated PMS's state; every method returns the records to send."""

    rooms: dict[str, list[SimGuest]] = field(default_factory=dict)
    last_guest: dict[str, str] = field(default_factory=dict)
    received: list[str] = field(default_factory=list)
    bookings: dict[int, Booking] = field(default_factory=dict)
    repeats: int = 0
    answer_mode: AnswerMode = "normal"
    answer_delay: float = 2.0
    night_audit: bool = False
    link_active: bool = False
    overlaps: int = 0
    outstanding: int | None = None
    _next_reservation: int = 10000

    def connected(self) -> list[Reply]:
        """A vendor connected: tell it to describe itself."""
        self.link_active = False
        self.outstanding = None
        return [(0.0, g.RecordLS.make(_stamp()))]

    def receive(self, record: g.Record) -> list[Reply]:
        """Handle one record from the vendor."""
        self.received.append(bytes(record).decode("latin-1"))
        kind = record.record_id
        if kind == "LA":
            return self._la()
        if kind == "LS":
            return [(0.0, g.RecordLA.make(_stamp()))] if self.link_active else self.connected()
        if kind == "LE":
            self.link_active = False
            return [(0.0, g.RecordLE.make(_stamp()))]
        if kind == "DR":
            return [(0.0, record) for record in self.resync_records()]
        if isinstance(record, g.RecordPS):
            return self._posting(record)
        return []

    def sent(self, record: g.Record) -> None:
        """A record went out on the wire: a PA ends the outstanding posting."""
        if isinstance(record, g.RecordPA) and record.posting_number == self.outstanding:
            self.outstanding = None

    def check_in(self, room: str, name: str, language: str = "EA") -> list[Reply]:
        """GI: a guest checks into ``room`` (a sharer when it is occupied)."""
        self._next_reservation += 1
        guest = SimGuest(str(self._next_reservation), name, language)
        sharer = bool(self.rooms.get(room))
        self.rooms.setdefault(room, []).append(guest)
        self.last_guest[room] = guest.reservation
        values = {"RN": room, "G#": guest.reservation, "GN": name, "GL": language}
        return [(0.0, g.RecordGI.make({**values, "GS": "Y" if sharer else "N"}))]

    def check_out(self, room: str) -> list[Reply]:
        """GO for every guest of ``room``."""
        guests = self.rooms.get(room, [])
        self.rooms[room] = []
        return [
            (0.0, g.RecordGO.make({"RN": room, "G#": x.reservation, "GS": "N"})) for x in guests
        ]

    def wake_up(self, room: str, date: str, time: str) -> list[Reply]:
        """WR for ``room`` at DA ``date`` TI ``time``."""
        return [(0.0, g.RecordWR.make({"RN": room, "DA": date, "TI": time}))]

    def set_night_audit(self, running: bool) -> list[Reply]:
        """NS or NE."""
        self.night_audit = running
        kind = g.RecordNS if running else g.RecordNE
        return [(0.0, kind.make(_stamp()))]

    def link_end(self, restart_after: float | None = None) -> list[Reply]:
        """LE: the PMS ends the link; with ``restart_after``, LS follows as after a restart."""
        self.link_active = False
        replies: list[Reply] = [(0.0, g.RecordLE.make(_stamp()))]
        if restart_after is not None:
            replies.append((restart_after, g.RecordLS.make(_stamp())))
        return replies

    def resync_records(self) -> list[g.Record]:
        """DS, one GI (per guest) or GO (vacant) with SF per room, DE."""
        records: list[g.Record] = [g.RecordDS.make(_stamp())]
        for room, guests in self.rooms.items():
            for guest in guests:
                values = {"RN": room, "G#": guest.reservation, "GN": guest.name}
                records.append(g.RecordGI.make({**values, "GL": guest.language, "SF": ""}))
            if not guests:
                records.append(g.RecordGO.make({"RN": room, "GS": "N", "SF": ""}))
        records.append(g.RecordDE.make(_stamp()))
        return records

    def snapshot(self) -> dict[str, Any]:
        """Everything a test may assert on, as JSON-ready data."""
        return {
            "link_active": self.link_active,
            "night_audit": self.night_audit,
            "answer_mode": self.answer_mode,
            "rooms": {room: [asdict(x) for x in guests] for room, guests in self.rooms.items()},
            "received": list(self.received),
            "postings": [asdict(b) for b in sorted(self.bookings.values(), key=_by_number)],
            "repeats": self.repeats,
            "overlaps": self.overlaps,
        }

    def _la(self) -> list[Reply]:
        if self.link_active:
            return []
        self.link_active = True
        return [(0.0, g.RecordLA.make(_stamp()))]

    def _posting(self, record: g.RecordPS) -> list[Reply]:
        number, room = record.posting_number, record.room or ""
        if self.outstanding is not None and number != self.outstanding:
            self.overlaps += 1
        self.outstanding = number
        if number is None:
            return [(0.0, _answer(record, "UR", "P# missing"))]
        if self.night_audit:
            return [(0.0, _answer(record, "NA", "night audit"))]
        booked = self.bookings.get(number)
        if booked is not None:
            self.repeats += 1
            return self._scripted(_answer(record, booked.status, "repeat"))
        reservation = self._folio(room)
        status = "OK" if reservation else "NG"
        self.bookings[number] = Booking(number, room, reservation, status, self.received[-1])
        return self._scripted(_answer(record, status, "" if reservation else "GUEST NOT FOUND"))

    def _folio(self, room: str) -> str:
        guests = self.rooms.get(room)
        if guests:
            return guests[0].reservation
        return self.last_guest.get(room, "")

    def _scripted(self, answer: g.RecordPA) -> list[Reply]:
        if self.answer_mode == "never":
            return []
        if self.answer_mode == "slow":
            return [(self.answer_delay, answer)]
        if self.answer_mode == "twice":
            return [(0.0, answer), (0.0, answer)]
        return [(0.0, answer)]


def _answer(posting: g.RecordPS, status: str, text: str) -> g.RecordPA:
    values = {"RN": posting.room or "", "AS": status, "P#": posting.get("P#") or ""}
    values.update({"DA": posting.date or "", "TI": posting.time or ""})
    return g.RecordPA.make({**values, "CT": text} if text else values)


def _stamp() -> dict[str, str]:
    return g.stamp(dt.datetime.now().astimezone())


def _by_number(booking: Booking) -> int:
    return booking.number
