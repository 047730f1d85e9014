"""Sans-I/O FIAS framing over RS-232 (the FIPS low-level protocol), with an injected clock.

Theory of operation. A frame is ``<STX>`` record ``<ETX>`` LRC, where LRC is the XOR of every
byte after STX up to and including ETX (seed 0). The receiver answers ACK or NAK within 3 s.
The sender keeps one frame outstanding: ACK releases the next queued frame, NAK resends the
frame, and silence for ``ack_timeout`` sends ENQ, which asks the receiver to repeat its last
answer (a receiver that saw nothing answers NAK, so the frame is resent). After ``attempts``
tries (4: the first plus 3 retries) the frame is discarded and reported as
:class:`FrameDiscarded`. Bytes to write appear in :meth:`SerialProtocol.data_to_send`; call
:meth:`SerialProtocol.tick` at least every second so timeouts fire.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from drivers.fias.errors import RemoteProtocolError
from drivers.fias.grammar import Record, pack_record, parse_record

STX, ETX, ENQ, ACK, NAK = 0x02, 0x03, 0x05, 0x06, 0x15
ACK_TIMEOUT_S = 3.0
ATTEMPTS = 4


@dataclass(frozen=True)
class FrameDiscarded:
    """A record the peer never acknowledged after every attempt."""

    record: Record


def lrc(data: bytes) -> int:
    """XOR of ``data`` (record bytes plus ETX), seed 0."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def frame(record: Record) -> bytes:
    """``<STX>`` record ``<ETX>`` LRC."""
    body = pack_record(record) + bytes((ETX,))
    return bytes((STX,)) + body + bytes((lrc(body),))


@dataclass
class _Outstanding:
    record: Record
    data: bytes
    attempts: int
    deadline: float


class SerialProtocol:
    """The serial framing layer: same interface as FiasProtocol plus ACK/NAK/ENQ handling."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        max_record: int = 8192,
        ack_timeout: float = ACK_TIMEOUT_S,
        attempts: int = ATTEMPTS,
    ) -> None:
        self._clock = clock
        self._max_record = max_record
        self._ack_timeout = ack_timeout
        self._attempts = attempts
        self._queue: deque[Record] = deque()
        self._outstanding: _Outstanding | None = None
        self._out = bytearray()
        self._frame: bytearray | None = None
        self._awaiting_lrc = False
        self._last_answer = NAK
        self._events: deque[Record | FrameDiscarded | RemoteProtocolError] = deque()

    def send(self, record: Record) -> bytes:
        """Queue ``record``; returns the bytes to write now (empty while a frame is unanswered)."""
        frame(record)  # raises LocalProtocolError before anything is queued
        self._queue.append(record)
        self._next_frame()
        return self.data_to_send()

    def data_to_send(self) -> bytes:
        """Bytes produced by received data or timers (ACK, NAK, ENQ, frames)."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def tick(self) -> None:
        """Fire the ACK timeout: ENQ, or discard after the last attempt."""
        pending = self._outstanding
        if pending is None or self._clock() < pending.deadline:
            return
        if pending.attempts >= self._attempts:
            self._events.append(FrameDiscarded(pending.record))
            self._outstanding = None
            self._next_frame()
            return
        pending.attempts += 1
        pending.deadline = self._clock() + self._ack_timeout
        self._out.append(ENQ)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the serial port."""
        for byte in data:
            self._byte(byte)

    def next_event(self) -> Record | FrameDiscarded | None:
        """The next record or discarded frame; raises RemoteProtocolError in stream order."""
        if not self._events:
            return None
        item = self._events.popleft()
        if isinstance(item, RemoteProtocolError):
            raise item
        return item

    def _byte(self, byte: int) -> None:
        if self._awaiting_lrc:
            self._end_frame(byte)
        elif self._frame is not None:
            self._frame_byte(byte)
        elif byte == STX:
            self._frame = bytearray()
        elif byte in (ACK, NAK):
            self._answer(byte)
        elif byte == ENQ:
            self._out.append(self._last_answer)
        else:
            self._events.append(RemoteProtocolError(f"byte {byte:#04x} outside a frame"))

    def _frame_byte(self, byte: int) -> None:
        assert self._frame is not None
        if byte == ETX:
            self._awaiting_lrc = True
        elif byte == STX:
            self._reject("STX inside a record: frame cut short")
            self._frame = bytearray()
        elif len(self._frame) >= self._max_record:
            self._reject(f"record longer than {self._max_record}")
        else:
            self._frame.append(byte)

    def _end_frame(self, byte: int) -> None:
        assert self._frame is not None
        body = bytes(self._frame)
        self._frame = None
        self._awaiting_lrc = False
        if lrc(body + bytes((ETX,))) != byte:
            self._reply(NAK)
            return
        self._reply(ACK)
        try:
            self._events.append(parse_record(body))
        except RemoteProtocolError as err:
            self._events.append(err)

    def _reject(self, reason: str) -> None:
        self._events.append(RemoteProtocolError(reason))
        self._frame = None
        self._reply(NAK)

    def _reply(self, answer: int) -> None:
        self._last_answer = answer
        self._out.append(answer)

    def _answer(self, byte: int) -> None:
        pending = self._outstanding
        if pending is None:
            return
        if byte == ACK:
            self._outstanding = None
            self._next_frame()
        elif pending.attempts >= self._attempts:
            self._events.append(FrameDiscarded(pending.record))
            self._outstanding = None
            self._next_frame()
        else:
            pending.attempts += 1
            pending.deadline = self._clock() + self._ack_timeout
            self._out += pending.data

    def _next_frame(self) -> None:
        if self._outstanding is not None or not self._queue:
            return
        record = self._queue.popleft()
        data = frame(record)
        self._outstanding = _Outstanding(record, data, 1, self._clock() + self._ack_timeout)
        self._out += data
