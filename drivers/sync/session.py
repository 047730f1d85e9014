"""The appliance's side of one sync session, sans-I/O: messages and the time in, events out.

Theory of operation: a session opens with ``hello`` and is up once HQ answers
``welcome`` (an ``error`` instead, or nothing within ``hello_timeout_s``, ends it).
Each registered batch stream (an outbox that goes up as ``cdr-batch``,
``sms-batch``, ...) keeps up to ``window`` batches in flight, each read after the last
one sent; an ``ack`` names the entries HQ stored, which the caller then deletes. The
session is lost when the oldest batch of a stream waits ``ack_timeout_s`` for its ack,
when nothing is heard for ``silence_s`` while something is outstanding, or when HQ
refuses a batch or cannot store (``db-unavailable``). A lost session is never resumed:
the caller opens a new one, which sends everything still in the outboxes again from
the start (HQ stores by record id, so a repeat is harmless).

The core holds no socket, thread or clock: every call takes ``now``. The caller
(appliance/sync/client.py) sends the messages it returns, reads the outboxes it asks
for, and acts on its events::

    session = ClientSession(config, streams)
    send(session.connect(hello, now))
    for event in session.receive(message, now): ...   # SessionUp, Acked, Delivered, ...
    while (want := session.want(stream)) is not None:
        send(session.batch(stream, read(want.after, want.limit), now))
    lost = session.check(now, busy)                     # a Lost event, or None
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.sync.protocol import Ack, ErrorReply, Hello, Message, RecordBatch, Welcome

# HQ could not store what it was sent; the session ends so that it is sent again later.
FATAL_ERRORS = frozenset({"db-unavailable"})


@dataclass(frozen=True)
class SessionConfig:
    """The session's timeouts, in seconds."""

    hello_timeout_s: float
    ack_timeout_s: float
    silence_s: float


@dataclass(frozen=True)
class BatchStream:
    """An outbox that goes up in batches of ``kind`` and leaves on ``ack(name, seqs)``."""

    name: str
    kind: type[RecordBatch]
    window: int = 1
    batch_size: int = 500


@dataclass(frozen=True)
class Want:
    """Read up to ``limit`` entries of ``stream`` with a sequence above ``after``."""

    stream: str
    after: int
    limit: int


@dataclass(frozen=True)
class SessionUp:
    """HQ welcomed the session."""

    welcome: Welcome


@dataclass(frozen=True)
class Acked:
    """HQ durably stored these entries of ``stream``: delete them from its outbox."""

    stream: str
    seqs: list[int]


@dataclass(frozen=True)
class Refused:
    """HQ refused a message (``error``); logged and counted by the caller."""

    error: ErrorReply


@dataclass(frozen=True)
class Delivered:
    """A message for a feature (a command, a snapshot, a recording reply)."""

    message: Message


@dataclass(frozen=True)
class Lost:
    """The session is over; ``reason`` is a stable label, ``detail`` says why."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


Event = SessionUp | Acked | Refused | Delivered | Lost


@dataclass
class _Flight:
    """The batches of one stream in flight, by first sequence, with when each was sent."""

    stream: BatchStream
    batches: OrderedDict[int, float]
    cursor: int = 0


class ClientSession:
    """One session of the link as seen by the appliance."""

    def __init__(self, config: SessionConfig, streams: Sequence[BatchStream]) -> None:
        self._config = config
        self._flights = {s.name: _Flight(s, OrderedDict()) for s in streams}
        self._refs = {s.kind.TYPE for s in streams}
        self.up = False
        self.started = 0.0
        self.last_heard = 0.0

    def connect(self, hello: Hello, now: float) -> list[Message]:
        """Open the session: the ``hello`` to send."""
        self.started = now
        return [hello]

    def receive(self, message: Message, now: float) -> list[Event]:
        """A message from HQ; the events it causes, in order."""
        if not self.up:
            return self._greeting(message, now)
        self.last_heard = now
        if isinstance(message, Ack):
            return self._acked(message)
        if isinstance(message, ErrorReply):
            return self._refused(message)
        return [Delivered(message)]

    def _greeting(self, message: Message, now: float) -> list[Event]:
        if isinstance(message, Welcome):
            self.up, self.last_heard = True, now
            return [SessionUp(message)]
        if isinstance(message, ErrorReply):
            return [Lost("refused", f"{message.error_id}: {message.message}")]
        return []

    def _acked(self, ack: Ack) -> list[Event]:
        flight = self._flights.get(ack.stream)
        if flight is None or not ack.seqs:
            return []
        flight.batches.pop(ack.seqs[0], None)
        return [Acked(ack.stream, ack.seqs)]

    def _refused(self, error: ErrorReply) -> list[Event]:
        events: list[Event] = [Refused(error), Delivered(error)]
        if error.ref in self._refs or error.error_id in FATAL_ERRORS:
            events.append(Lost("hq-error", error.error_id))
        return events

    def want(self, stream: str) -> Want | None:
        """What to read from ``stream`` next, or None while its window is full or before up."""
        flight = self._flights[stream]
        if not self.up or len(flight.batches) >= flight.stream.window:
            return None
        return Want(stream, flight.cursor, flight.stream.batch_size)

    def batch(self, stream: str, entries: list[tuple[int, bytes]], now: float) -> Message:
        """The message carrying ``entries`` (read as ``want`` asked), now in flight."""
        flight = self._flights[stream]
        flight.batches[entries[0][0]] = now
        flight.cursor = entries[-1][0]
        return flight.stream.kind(entries)

    def in_flight(self) -> int:
        """Batches sent and not yet acknowledged, over every stream."""
        return sum(len(f.batches) for f in self._flights.values())

    def check(self, now: float, busy: bool = False) -> Lost | None:
        """The timeouts: a Lost event when the session is over at ``now``.

        ``busy`` says the caller waits for HQ on something of its own (an upload), so
        silence from HQ counts even with no batch in flight.
        """
        if not self.up:
            if now - self.started > self._config.hello_timeout_s:
                return Lost("no-welcome", "HQ did not answer hello in time")
            return None
        for name, flight in self._flights.items():
            oldest = next(iter(flight.batches.values()), now)
            if now - oldest > self._config.ack_timeout_s:
                return Lost("ack-timeout", f"no ack for {name} records")
        silent = now - self.last_heard > self._config.silence_s
        if silent and (busy or self.in_flight()):
            return Lost("silence", "nothing heard from HQ")
        return None
