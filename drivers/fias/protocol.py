"""Sans-I/O FIAS framing over TCP: bytes in, records out; records to bytes.

Theory of operation. Every record travels as ``<STX>`` record ``<ETX>`` (Oracle requires the
framing on TCP too, so concatenated records in one read can be split). The receiver keeps one
partial frame at most. Bytes outside a frame, a frame cut by a new STX, a control byte inside a
record and a frame longer than ``max_record`` become :class:`RemoteProtocolError` items, raised
from :meth:`FiasProtocol.next_event` in stream order; the parser then resynchronises at the next
STX, so memory stays bounded by ``max_record``. The core is symmetric: the PMS simulator speaks
it too.
"""

from __future__ import annotations

from collections import deque

from drivers.fias.errors import RemoteProtocolError
from drivers.fias.grammar import Record, pack_record, parse_record

STX = 0x02
ETX = 0x03
DEFAULT_MAX_RECORD = 8192


class FiasProtocol:
    """The TCP framing layer; feed it bytes, read records, ask it for bytes to send."""

    def __init__(self, max_record: int = DEFAULT_MAX_RECORD) -> None:
        self._max_record = max_record
        self._buffer = bytearray()
        self._in_frame = False
        self._discarding = False
        self._events: deque[Record | RemoteProtocolError] = deque()

    def send(self, record: Record) -> bytes:
        """The framed bytes of ``record``; raises LocalProtocolError for unsendable data."""
        return bytes((STX,)) + pack_record(record) + bytes((ETX,))

    def data_to_send(self) -> bytes:
        """Bytes the framing itself wants written (none on TCP: there is no low-level ACK)."""
        return b""

    def tick(self) -> None:
        """Timers of the framing layer (none on TCP)."""

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer."""
        view = memoryview(data)
        while view:
            view = view[self._scan(view) :]

    def _scan(self, view: memoryview) -> int:
        """Consume a run of record bytes at once, or one framing byte; returns bytes used."""
        if not self._in_frame or view[0] in (STX, ETX):
            self._byte(view[0])
            return 1
        run = bytes(view[: self._max_record + 1 - len(self._buffer)])
        end = min((i for i in (run.find(b"\x02"), run.find(b"\x03")) if i >= 0), default=len(run))
        if end == len(run) and len(self._buffer) + end > self._max_record:
            self._byte(view[0])
            return 1
        self._buffer += run[:end]
        return end

    def next_event(self) -> Record | None:
        """The next record, None when more bytes are needed; raises RemoteProtocolError in order."""
        if not self._events:
            return None
        item = self._events.popleft()
        if isinstance(item, RemoteProtocolError):
            raise item
        return item

    def _byte(self, byte: int) -> None:
        if byte == STX:
            if self._in_frame:
                self._events.append(RemoteProtocolError("STX inside a record: frame cut short"))
            self._buffer.clear()
            self._in_frame = True
            self._discarding = False
        elif not self._in_frame:
            if not self._discarding:
                self._events.append(RemoteProtocolError(f"byte {byte:#04x} outside a frame"))
                self._discarding = True
        elif byte == ETX:
            self._frame(bytes(self._buffer))
        elif len(self._buffer) >= self._max_record:
            self._events.append(RemoteProtocolError(f"record longer than {self._max_record}"))
            self._buffer.clear()
            self._in_frame = False
            self._discarding = True
        else:
            self._buffer.append(byte)

    def _frame(self, body: bytes) -> None:
        self._buffer.clear()
        self._in_frame = False
        self._discarding = False
        try:
            self._events.append(parse_record(body))
        except RemoteProtocolError as err:
            self._events.append(err)
