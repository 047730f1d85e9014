"""Sans-I/O FIAS link state machine (vendor side), driven by records and an injected clock.

Theory of operation. After the transport connects, the vendor waits up to 3 s for the PMS to
speak; an LS (or that timeout) makes it describe itself: LD, one LR per record type, LA. The
PMS's LA makes the link active (:class:`LinkUp`); without it within 30 s the link asks its
adapter to reconnect. While active it sends an LS alive check every ``alive_interval`` (spec:
not more often than every 5 min) and expects an answer within ``answer_timeout``. An LE from
the PMS is answered with LE; the link then waits for the PMS's LS to start again, and asks for
a reconnect if none comes. A resync (DR) collects the swap records between DS and DE into a
room snapshot (:class:`ResyncCompleted`); nothing else may be sent during the swap. NS/NE mark a
night audit. :attr:`FiasLink.postings_allowed` is true only while active, outside a swap and
outside a night audit. Reconnects back off exponentially with jitter from an injected RNG.

Every record other than link control (guest data, RE, wake-ups, PA, unknown types) is passed
through as an event, after being applied to the snapshot when a swap is running.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from drivers.fias import grammar as g

# LR per record type, both directions (the PMS reference's recommended set for a PBX).
LINK_RECORDS: tuple[tuple[str, str], ...] = (
    ("GI", "RNG#GNGFGLGVGGGAGDGSSF"),
    ("GC", "RNG#GNGFGLGVGGGAGDGSRO"),
    ("GO", "RNG#GSSF"),
    ("RE", "RNCSDNMLRSVMPU"),
    ("WR", "RNDATI"),
    ("WC", "RNDATI"),
    ("WA", "RNDATIAS"),
    ("PS", "RNPTTADATIP#DDDUPCCTSOMAM#"),
    ("PA", "RNASDATIP#CT"),
    ("NS", "DATI"),
    ("NE", "DATI"),
)


class LinkState(enum.Enum):
    """Where the link is in its start-up."""

    DISCONNECTED = "disconnected"
    AWAITING_PEER = "awaiting-peer"
    STARTING = "starting"
    ACTIVE = "active"
    ENDED = "ended"


@dataclass(frozen=True)
class LinkTiming:
    """Timers of the link, in seconds (spec defaults)."""

    startup_wait: float = 3.0
    answer_timeout: float = 30.0
    alive_interval: float = 300.0
    relink_wait: float = 60.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0


@dataclass(frozen=True)
class Guest:
    """A guest as the resync reported them."""

    reservation: str
    name: str = ""
    language: str = ""


@dataclass(frozen=True)
class RoomState:
    """A room in the resync snapshot; vacant when it has no guest."""

    room: str
    guests: tuple[Guest, ...] = ()

    @property
    def occupied(self) -> bool:
        """Whether anyone is checked in."""
        return bool(self.guests)


@dataclass(frozen=True)
class LinkUp:
    """The PMS answered our LA: the link is active."""


@dataclass(frozen=True)
class LinkDown:
    """The link stopped being active; ``reason`` is kebab-case."""

    reason: str


@dataclass(frozen=True)
class ResyncCompleted:
    """DE arrived: every room the swap reported, with real-time changes applied."""

    rooms: Mapping[str, RoomState]


@dataclass(frozen=True)
class ResyncFailed:
    """The PMS did not start the swap within the answer timeout."""


@dataclass(frozen=True)
class NightAudit:
    """NS (``running``) or NE (not ``running``)."""

    running: bool


LinkEvent = LinkUp | LinkDown | ResyncCompleted | ResyncFailed | NightAudit | g.Record


@dataclass
class _Swap:
    requested_at: float
    started: bool = False
    rooms: dict[str, RoomState] = field(default_factory=dict)


class FiasLink:
    """The vendor's side of a FIAS link; the adapter feeds it records and ticks."""

    def __init__(
        self,
        clock: Callable[[], float],
        stamp: Callable[[], dict[str, str]],
        *,
        version: str = "1.0",
        timing: LinkTiming | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._stamp = stamp
        self._version = version
        self.timing = timing or LinkTiming()
        self._rng = rng or random.Random()
        self.state = LinkState.DISCONNECTED
        self.night_audit = False
        self.should_close = False
        self._deadline: float | None = None
        self._alive_due: float | None = None
        self._swap: _Swap | None = None
        self._failures = 0
        self._out: deque[g.Record] = deque()
        self._events: deque[LinkEvent] = deque()

    @property
    def postings_allowed(self) -> bool:
        """Active, not in a swap, not in a night audit."""
        return self.state is LinkState.ACTIVE and self._swap is None and not self.night_audit

    @property
    def resyncing(self) -> bool:
        """Whether a DR is outstanding or a swap is running."""
        return self._swap is not None

    def connection_made(self) -> None:
        """The transport is up: give the PMS a moment to speak first."""
        self.state = LinkState.AWAITING_PEER
        self.should_close = False
        self._deadline = self._clock() + self.timing.startup_wait

    def connection_lost(self) -> float:
        """The transport is gone; returns the delay before the next connect attempt."""
        self._down("connection-lost")
        self.state = LinkState.DISCONNECTED
        self._failures += 1
        ceiling: float = min(
            self.timing.reconnect_max, self.timing.reconnect_min * 2.0 ** (self._failures - 1)
        )
        return ceiling * (0.5 + self._rng.random() / 2)

    def close(self) -> None:
        """Orderly shutdown: LE to the PMS."""
        if self.state is not LinkState.DISCONNECTED:
            self._down("closed")
            self._out.append(g.RecordLE.make(self._stamp()))
            self.state = LinkState.ENDED

    def request_resync(self) -> bool:
        """Send DR (only after data loss, never periodically); False unless postings could flow."""
        if not self.postings_allowed:
            return False
        self._swap = _Swap(self._clock())
        self._out.append(g.RecordDR.make(self._stamp()))
        return True

    def send(self, record: g.Record) -> None:
        """Queue an application record (PS, WA, RE...) for the adapter to write."""
        self._out.append(record)

    def records_to_send(self) -> list[g.Record]:
        """Records the adapter must write now, in order."""
        records = list(self._out)
        self._out.clear()
        return records

    def next_event(self) -> LinkEvent | None:
        """The next event for the application, None when there is none."""
        return self._events.popleft() if self._events else None

    def tick(self) -> None:
        """Fire due timers: start-up, LA wait, alive check, swap start."""
        now = self._clock()
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self._expired()
        if self._alive_due is not None and now >= self._alive_due:
            self._alive_due = None
            self._out.append(g.RecordLS.make(self._stamp()))
            self._deadline = now + self.timing.answer_timeout
        swap = self._swap
        late = swap is not None and now >= swap.requested_at + self.timing.answer_timeout
        if swap is not None and not swap.started and late:
            self._swap = None
            self._events.append(ResyncFailed())

    def receive(self, record: g.Record) -> None:
        """Handle one record from the PMS."""
        if self.state is LinkState.ACTIVE:
            self._deadline = None
            self._schedule_alive()
        handler = _HANDLERS.get(record.record_id)
        if handler is not None:
            handler(self, record)
            return
        swap = self._swap
        if swap is not None and swap.started and isinstance(record, g.GuestRecord):
            _apply_guest(swap.rooms, record)
        self._events.append(record)

    def _expired(self) -> None:
        if self.state is LinkState.AWAITING_PEER:
            self._describe()
        elif self.state in (LinkState.STARTING, LinkState.ACTIVE):
            self._down("no-answer")
            self.should_close = True
        elif self.state is LinkState.ENDED:
            self.should_close = True

    def _describe(self) -> None:
        stamp = self._stamp()
        self._out.append(g.RecordLD.make({**stamp, "V#": self._version, "IF": "PB"}))
        self._out.extend(g.RecordLR.make({"RI": ri, "FL": fl}) for ri, fl in LINK_RECORDS)
        self._out.append(g.RecordLA.make(stamp))
        self.state = LinkState.STARTING
        self._deadline = self._clock() + self.timing.answer_timeout

    def _on_ls(self, _record: g.Record) -> None:
        self._down("pms-restarted")
        self._describe()

    def _on_la(self, _record: g.Record) -> None:
        if self.state is LinkState.STARTING:
            self.state = LinkState.ACTIVE
            self._deadline = None
            self._failures = 0
            self._schedule_alive()
            self._events.append(LinkUp())

    def _on_le(self, _record: g.Record) -> None:
        if self.state is not LinkState.ENDED:
            self._down("link-end")
            self._out.append(g.RecordLE.make(self._stamp()))
            self.state = LinkState.ENDED
            self._deadline = self._clock() + self.timing.relink_wait

    def _on_ds(self, _record: g.Record) -> None:
        if self._swap is None:
            self._swap = _Swap(self._clock())
        self._swap.started = True

    def _on_de(self, _record: g.Record) -> None:
        swap = self._swap
        self._swap = None
        if swap is not None and swap.started:
            self._events.append(ResyncCompleted(dict(swap.rooms)))

    def _on_night_audit(self, record: g.Record) -> None:
        running = record.record_id == "NS"
        if running != self.night_audit:
            self.night_audit = running
            self._events.append(NightAudit(running))

    def _down(self, reason: str) -> None:
        if self.state is LinkState.ACTIVE:
            self._events.append(LinkDown(reason))
        self._alive_due = None
        self._swap = None
        self.night_audit = False

    def _schedule_alive(self) -> None:
        self._alive_due = self._clock() + self.timing.alive_interval


_HANDLERS: dict[str, Callable[[FiasLink, g.Record], None]] = {
    "LS": FiasLink._on_ls,
    "LA": FiasLink._on_la,
    "LE": FiasLink._on_le,
    "DS": FiasLink._on_ds,
    "DE": FiasLink._on_de,
    "NS": FiasLink._on_night_audit,
    "NE": FiasLink._on_night_audit,
}


def _apply_guest(rooms: dict[str, RoomState], record: g.GuestRecord) -> None:
    room = record.room
    if room is None:
        return
    current = rooms.get(room, RoomState(room))
    reservation = record.reservation or ""
    others = tuple(guest for guest in current.guests if guest.reservation != reservation)
    if isinstance(record, g.RecordGI):
        guest = Guest(reservation, record.guest_name or "", record.language or "")
        rooms[room] = RoomState(room, (*others, guest))
    elif isinstance(record, g.RecordGO):
        rooms[room] = RoomState(room, others if reservation else ())
    else:
        rooms[room] = current
