"""Sans-I/O core of the AT command protocol: bytes in, events out; commands to bytes.

Theory of operation. The host sends one command at a time, terminated by CR (V.250 §5.2.1).
The modem answers with lines framed by CR LF (V.250 §5.7.1): optionally the echo of the
command, information lines, then one final result. Unsolicited result codes (URCs) may land
anywhere, even between the echo and the final result, so every line is classified on its own:

1. the echo of the pending command (or of an SMS payload) is dropped;
2. a final result ends the pending command (call-progress results such as NO CARRIER only end
   ATD/ATA; otherwise they are URCs reporting a dropped call);
3. a line with one of the pending command's prefixes is one of its information lines;
4. a line that looks like a URC (prefix list from the modem profile) is a URC; ``+CMT`` and
   ``+CDS`` take the following line (the PDU) with them (27.005 §3.4.1);
5. any other line belongs to a command that takes unprefixed lines (IMEI, IMSI, PDU listings)
   or else is reported as a URC, so nothing is lost silently.

The SMS prompt ``> `` (27.005 §3.5.1) has no line terminator; it is recognised at the start of a
line while a prompt command is pending. Lines longer than ``max_line`` and lines carrying control
bytes become :class:`RemoteProtocolError` events, raised from :meth:`AtProtocol.next_event` in
stream order; the parser then resynchronises at the next line end. The only bytes kept between
calls are one partial line, so memory is bounded by ``max_line``.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from drivers.modem.errors import LocalProtocolError, RemoteProtocolError
from drivers.modem.grammar import FinalResult, parse_final

CTRL_Z = b"\x1a"
_TERMINATOR = re.compile(rb"[\r\n]")
# Control bytes other than TAB (Ctrl-Z and ESC are removed before this check).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
ESC = b"\x1b"
_CALL_PROGRESS = frozenset({"no-carrier", "busy", "no-answer", "no-dialtone"})
# URCs every 27.007 modem may send; profiles add their vendor prefixes.
BASE_URC_PREFIXES: tuple[str, ...] = (
    "RING",
    "+CRING:",
    "+CLIP:",
    "+CCWA:",
    "+CREG:",
    "+CGREG:",
    "+CEREG:",
    "+CMTI:",
    "+CMT:",
    "+CDS:",
    "+CDSI:",
    "+CUSD:",
    "+CPIN:",
    "+CLCC:",
    "NO CARRIER",
    "BUSY",
    "NO ANSWER",
)
TWO_LINE_URCS: tuple[str, ...] = ("+CMT:", "+CDS:")


@dataclass(frozen=True)
class Command:
    """One AT command line and how to attribute the lines that answer it."""

    text: str
    expect: tuple[str, ...] = ()
    raw: bool = False
    prompt: bool = False
    call: bool = False


@dataclass(frozen=True)
class Response:
    """A finished command: its information lines and final result."""

    command: str
    lines: tuple[str, ...]
    result: FinalResult


@dataclass(frozen=True)
class Urc:
    """An unsolicited result code; ``body`` is the second line of ``+CMT``/``+CDS``."""

    line: str
    body: str = ""


@dataclass(frozen=True)
class Prompt:
    """The modem is waiting for an SMS payload (27.005 §3.5.1)."""

    command: str


Event = Response | Urc | Prompt


_EXTENDED = re.compile(r"AT([+^$%*#][A-Z0-9]+)", re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def answer_prefix(text: str) -> tuple[str, ...]:
    """V.250 §5.4.2: an extended command ``AT+NAME...`` answers with ``+NAME:`` lines."""
    match = _EXTENDED.match(text)
    return (match.group(1).upper() + ":",) if match else ()


class AtProtocol:
    """The AT protocol state machine; feed it bytes, read events, ask it for bytes to send."""

    def __init__(
        self, *, urc_prefixes: Iterable[str] = BASE_URC_PREFIXES, max_line: int = 2048
    ) -> None:
        self._urc_prefixes = tuple(urc_prefixes)
        self._max_line = max_line
        self._buffer = bytearray()
        self._discarding = False
        self._events: deque[Event | RemoteProtocolError] = deque()
        self._pending: Command | None = None
        self._lines: list[str] = []
        self._payload = ""
        self._two_line_head: str | None = None

    @property
    def pending(self) -> Command | None:
        """The command awaiting its final result, if any."""
        return self._pending

    def send(self, command: Command) -> bytes:
        """Start ``command`` and return the bytes to write."""
        if self._pending is not None:
            raise LocalProtocolError(f"{self._pending.text!r} is still outstanding")
        try:
            data = command.text.encode("ascii") + b"\r"
        except UnicodeEncodeError as err:
            raise LocalProtocolError(f"non-ASCII command {command.text!r}") from err
        self._pending = command
        self._lines = []
        self._payload = ""
        return data

    def send_payload(self, payload: str) -> bytes:
        """The SMS payload that answers a prompt, terminated by Ctrl-Z."""
        if self._pending is None or not self._pending.prompt:
            raise LocalProtocolError("no prompt command is outstanding")
        self._payload = payload
        return payload.encode("ascii") + CTRL_Z

    def abort_payload(self) -> bytes:
        """ESC cancels a prompt; the modem then answers with a final result."""
        return ESC

    def cancel(self) -> None:
        """Forget the pending command (after a timeout); late lines become URCs."""
        self._pending = None
        self._lines = []

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the modem."""
        self._buffer += data
        if self._awaiting_prompt():
            while self._scan_one():
                pass
        else:
            self._split_lines()
        if self._discarding:
            self._buffer.clear()
        elif len(self._buffer) > self._max_line:
            self._overflow()

    def next_event(self) -> Event | None:
        """The next event, None when more bytes are needed; raises RemoteProtocolError in order."""
        if not self._events:
            return None
        item = self._events.popleft()
        if isinstance(item, RemoteProtocolError):
            raise item
        return item

    def _scan_one(self) -> bool:
        if not self._discarding and self._awaiting_prompt() and self._buffer.startswith(b"> "):
            del self._buffer[:2]
            assert self._pending is not None
            self._events.append(Prompt(self._pending.text))
            return True
        end = _line_end(self._buffer)
        if end < 0:
            return False
        raw = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        if self._discarding:
            self._discarding = False
        elif len(raw) > self._max_line:
            self._events.append(_too_long(self._max_line))
        else:
            self._line(raw)
        return True

    def _split_lines(self) -> None:
        # Fast path for the common case: no prompt can start a line, so split all at once.
        *lines, tail = _TERMINATOR.split(bytes(self._buffer))
        if not lines:
            return
        self._buffer = bytearray(tail)
        for raw in lines:
            if self._discarding:
                self._discarding = False
            elif len(raw) > self._max_line:
                self._events.append(_too_long(self._max_line))
            else:
                self._line(raw)

    def _awaiting_prompt(self) -> bool:
        return self._pending is not None and self._pending.prompt and not self._payload

    def _overflow(self) -> None:
        self._events.append(_too_long(self._max_line))
        self._discarding = True
        self._buffer.clear()

    def _line(self, raw: bytes) -> None:
        if not raw:
            return
        text = raw.replace(CTRL_Z, b"").replace(ESC, b"")
        if _CONTROL.search(text) is not None:
            self._events.append(RemoteProtocolError(f"control bytes in line {raw[:40]!r}"))
            return
        line = text.decode("latin-1").strip()
        if line:
            self._classify(line)

    def _classify(self, line: str) -> None:
        if self._two_line_head is not None:
            self._events.append(Urc(self._two_line_head, line))
            self._two_line_head = None
            return
        pending = self._pending
        if pending is not None and self._is_echo(line, pending):
            return
        final = parse_final(line)
        if final is not None:
            self._final(line, final)
        elif pending is not None and line.startswith(pending.expect):
            self._lines.append(line)
        elif line.startswith(TWO_LINE_URCS):
            self._two_line_head = line
        elif pending is None or not pending.raw or line.startswith(self._urc_prefixes):
            self._events.append(Urc(line))
        else:
            self._lines.append(line)

    def _is_echo(self, line: str, pending: Command) -> bool:
        if line.upper() == pending.text.upper():
            return True
        return bool(self._payload) and line == self._payload

    def _final(self, line: str, final: FinalResult) -> None:
        pending = self._pending
        if pending is None or (final.kind in _CALL_PROGRESS and not pending.call):
            self._events.append(Urc(line))
            return
        self._events.append(Response(pending.text, tuple(self._lines), final))
        self._pending = None
        self._lines = []
        self._payload = ""


def _too_long(limit: int) -> RemoteProtocolError:
    return RemoteProtocolError(f"line longer than {limit} bytes")


def _line_end(buffer: bytearray) -> int:
    """Index of the first CR or LF, or -1."""
    match = _TERMINATOR.search(buffer)
    return -1 if match is None else match.start()
