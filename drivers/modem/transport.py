"""asyncio transport for the AT protocol core over a serial device or pty.

One command is outstanding at a time (V.250 has no pipelining). Each command gets a timeout by
class; the defaults follow chan_dongle's 1 s / 5 s / 40 s queues and the Quectel maximums (ATD
5 s; ATA/ATH/CHUP up to 90 s is network dependent, 40 s covers practice). After every final
result the next command waits at least 20 ms, as Telit and u-blox advise, so buffered URCs can
flush. Reads use ``loop.add_reader`` on the non-blocking fd: the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from drivers.modem import grammar
from drivers.modem.counters import ModemCounters
from drivers.modem.errors import (
    CommandTimeout,
    PortClosed,
    RemoteProtocolError,
    TransportError,
)
from drivers.modem.protocol import AtProtocol, Command, Prompt, Response, Urc
from drivers.modem.serialio import SerialLink

log = logging.getLogger(__name__)

_LONG = (
    "ATA",
    "ATH",
    "AT+CHUP",
    "AT+QHUP",
    "AT+CMGS",
    "AT+COPS=",
    "AT+CUSD",
    "AT+CFUN",
    "AT+QDSIM",
    "AT+CLCK",
    "AT+CPIN=",
)
_MEDIUM = (
    "ATD",
    "AT+CMGR",
    "AT+CMGL",
    "AT+CMGD",
    "AT+COPS?",
    "AT+CPIN?",
    "AT+CIMI",
    "AT+CNUM",
    "AT+QCCID",
    "AT+CCID",
    "AT+CICCID",
    "AT^ICCID",
)


@dataclass(frozen=True)
class Timeouts:
    """Seconds per command class."""

    short: float = 1.0
    medium: float = 5.0
    long: float = 40.0

    def for_command(self, text: str) -> float:
        """The timeout for ``text`` by its class."""
        kind = _command_class(text)
        if kind == "long":
            return self.long
        return self.medium if kind == "medium" else self.short


@functools.lru_cache(maxsize=512)
def _command_class(text: str) -> str:
    upper = text.upper()
    if upper.startswith(_LONG):
        return "long"
    if upper.startswith(_MEDIUM):
        return "medium"
    return "short"


class AtTransport:
    """Runs commands on one AT port; URCs go to ``on_urc``; loss of the port to ``on_lost``."""

    def __init__(
        self,
        path: str,
        *,
        urc_prefixes: tuple[str, ...],
        on_urc: Callable[[Urc], None],
        on_lost: Callable[[TransportError], None],
        counters: ModemCounters,
        timeouts: Timeouts = Timeouts(),
        pacing: float = 0.02,
    ) -> None:
        self.path = path
        self.timeouts = timeouts
        self._urc_prefixes = urc_prefixes
        self._on_urc = on_urc
        self._on_lost = on_lost
        self._counters = counters
        self._pacing = pacing
        self._link: SerialLink | None = None
        self._protocol = AtProtocol(urc_prefixes=urc_prefixes)
        self._lock = asyncio.Lock()
        self._waiter: asyncio.Future[Response | Prompt] | None = None
        self._out = bytearray()
        self._writer_armed = False
        self._last_final = 0.0
        self.last_activity = 0.0

    @property
    def is_open(self) -> bool:
        """True while the port is open."""
        return self._link is not None

    async def open(self) -> None:
        """Open the port (exclusive) and start watching it."""
        link = await asyncio.to_thread(SerialLink.open, self.path)
        self._link = link
        self._protocol = AtProtocol(urc_prefixes=self._urc_prefixes)
        loop = asyncio.get_running_loop()
        loop.add_reader(link.fd, self._on_readable)
        self.last_activity = loop.time()

    def close(self) -> None:
        """Stop watching and close the port; a waiting command fails with PortClosed."""
        link, self._link = self._link, None
        if link is None:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(link.fd)
        loop.remove_writer(link.fd)
        self._writer_armed = False
        self._out.clear()
        link.close()
        self._fail_waiter(PortClosed(f"{self.path} closed"))

    async def command(
        self, command: Command, *, limit: float | None = None, payload: str | None = None
    ) -> Response:
        """Run one command; raises CommandError subclasses, CommandTimeout or PortClosed."""
        seconds = limit if limit is not None else self.timeouts.for_command(command.text)
        async with self._lock:
            loop = asyncio.get_running_loop()
            delay = self._last_final + self._pacing - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                response = await self._exchange(command, seconds, payload)
            finally:
                self._last_final = loop.time()
        self._counters.commands += 1
        if not response.result.ok:
            self._counters.command_errors += 1
            raise grammar.error_for(command.text, response.result)
        return response

    async def _exchange(self, command: Command, limit: float, payload: str | None) -> Response:
        if self._link is None:
            raise PortClosed(f"{self.path} is not open")
        deadline = asyncio.get_running_loop().time() + limit
        try:
            first = await self._send(self._protocol.send(command), deadline)
            if isinstance(first, Prompt):
                text = payload if payload is not None else ""
                first = await self._send(self._protocol.send_payload(text), deadline)
        except TimeoutError:
            self._protocol.cancel()
            self._counters.timeouts += 1
            raise CommandTimeout(f"{command.text!r}: no answer within {limit:.1f} s") from None
        if isinstance(first, Prompt):
            raise RemoteProtocolError(f"second prompt for {command.text!r}")
        return first

    async def _send(self, data: bytes, deadline: float) -> Response | Prompt:
        # A plain timer rather than asyncio.timeout(): this is the hot path of every command.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response | Prompt] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            self._write(data)
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _write(self, data: bytes) -> None:
        assert self._link is not None
        self._counters.bytes_out += len(data)
        self._out += data
        self._flush()

    def _flush(self) -> None:
        link = self._link
        if link is None:
            return
        try:
            written = os.write(link.fd, self._out)
        except BlockingIOError:
            written = 0
        except OSError as err:
            self._lost(PortClosed(f"{self.path}: write failed: {err}"))
            return
        del self._out[:written]
        if bool(self._out) != self._writer_armed:
            self._arm_writer(link.fd, bool(self._out))

    def _arm_writer(self, fd: int, armed: bool) -> None:
        # Only touch the selector when the state changes: this runs on every command.
        loop = asyncio.get_running_loop()
        if armed:
            loop.add_writer(fd, self._flush)
        else:
            loop.remove_writer(fd)
        self._writer_armed = armed

    def _on_readable(self) -> None:
        link = self._link
        if link is None:
            return
        try:
            data = os.read(link.fd, 65536)
        except BlockingIOError:
            return
        except OSError as err:
            self._lost(PortClosed(f"{self.path}: read failed: {err}"))
            return
        if not data:
            self._lost(PortClosed(f"{self.path}: device went away"))
            return
        self._counters.bytes_in += len(data)
        self.last_activity = asyncio.get_running_loop().time()
        self._protocol.receive_data(data)
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                event = self._protocol.next_event()
            except RemoteProtocolError as err:
                self._counters.garbage_lines += 1
                log.warning("%s: discarded bytes from modem: %s", self.path, err)
                continue
            if event is None:
                return
            if isinstance(event, Urc):
                self._counters.urcs += 1
                self._on_urc(event)
            elif self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(event)

    def _lost(self, err: TransportError) -> None:
        log.warning("%s", err)
        self._counters.unplugs += 1
        self.close()
        self._on_lost(err)

    def _fail_waiter(self, err: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(err)


def _expire(waiter: asyncio.Future[Response | Prompt]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
