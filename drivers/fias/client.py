"""Thin asyncio adapter: runs a FiasLink over a byte channel (TCP or a serial port) forever.

The adapter owns no protocol logic. It connects (bounded by ``connect_timeout``), feeds the
framing and the link, writes what they produce, ticks their timers every ``tick`` seconds and
reconnects after the delay the link chooses. Records the framing cannot parse and record types
the link does not know are logged with their raw bytes; the link carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
import tty
from collections.abc import Awaitable, Callable
from typing import Protocol

from drivers.fias.errors import FiasError, LinkError, RemoteProtocolError
from drivers.fias.grammar import Record, UnknownRecord
from drivers.fias.link import FiasLink, LinkEvent, LinkState
from drivers.fias.serial import FrameDiscarded

log = logging.getLogger(__name__)


class Framing(Protocol):
    """FiasProtocol (TCP) or SerialProtocol: the framing interface the adapter drives."""

    def send(self, record: Record) -> bytes: ...

    def data_to_send(self) -> bytes: ...

    def tick(self) -> None: ...

    def receive_data(self, data: bytes) -> None: ...

    def next_event(self) -> Record | FrameDiscarded | None: ...


class Channel(Protocol):
    """A connected byte stream."""

    async def read(self) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


Opener = Callable[[], Awaitable[Channel]]


class TcpChannel:
    """A TCP connection to the PMS's IFC (the IFC is always the server)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    def opener(cls, host: str, port: int, timeout: float) -> Opener:
        """A function that connects within ``timeout``."""

        async def open_channel() -> Channel:
            try:
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_connection(host, port)
            except (OSError, TimeoutError) as err:
                raise LinkError(f"cannot connect to PMS at {host}:{port}: {err}") from err
            return cls(reader, writer)

        return open_channel

    async def read(self) -> bytes:
        return await self._reader.read(65536)

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class SerialChannel:
    """A raw serial device (or pty) opened non-blocking; the line settings stay the device's."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._readable = asyncio.Event()
        self._loop.add_reader(fd, self._readable.set)

    @classmethod
    def opener(cls, path: str) -> Opener:
        """A function that opens ``path`` in raw mode."""

        async def open_channel() -> Channel:
            try:
                fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            except OSError as err:
                raise LinkError(f"cannot open PMS serial port {path}: {err.strerror}") from err
            with contextlib.suppress(termios.error):
                tty.setraw(fd)
            return cls(fd)

        return open_channel

    async def read(self) -> bytes:
        while True:
            await self._readable.wait()
            self._readable.clear()
            try:
                return os.read(self._fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return b""

    def write(self, data: bytes) -> None:
        os.write(self._fd, data)

    async def close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)


class FiasClient:
    """Keeps a FIAS link up and hands its events to ``on_event`` on the owning loop."""

    def __init__(
        self,
        link: FiasLink,
        framing: Callable[[], Framing],
        opener: Opener,
        *,
        on_event: Callable[[LinkEvent], None] | None = None,
        tick: float = 0.5,
    ) -> None:
        self.link = link
        self._framing_factory = framing
        self._opener = opener
        self.on_event = on_event or _ignore
        self._tick = tick
        self._channel: Channel | None = None
        self._framing: Framing | None = None
        self._closing = False

    def send(self, record: Record) -> bool:
        """Write ``record`` now; False when no link is there to carry it."""
        if self._channel is None or self.link.state is not LinkState.ACTIVE:
            return False
        self.link.send(record)
        self._flush()
        return True

    def request_resync(self) -> bool:
        """Ask the PMS for a database resync (after data loss only)."""
        started = self.link.request_resync()
        self._flush()
        return started

    async def run(self) -> None:
        """Connect, run, reconnect with the link's backoff; until closed or cancelled."""
        while not self._closing:
            await self._attempt()

    async def close(self) -> None:
        """Orderly end: LE to the PMS (when connected), then close the channel; run() returns."""
        self._closing = True
        if self._channel is not None:
            self.link.close()
            self._flush()
            channel, self._channel = self._channel, None
            await channel.close()

    async def _attempt(self) -> None:
        try:
            await self._session()
        except FiasError as err:
            if not self._closing:
                log.warning("PMS link: %s", err)
        if not self._closing:
            delay = self.link.connection_lost()
            self._drain_events()
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        self._channel = await self._opener()
        self._framing = self._framing_factory()
        self.link.connection_made()
        try:
            await self._pump(self._channel)
        finally:
            channel, self._channel = self._channel, None
            if channel is not None:
                await channel.close()

    async def _pump(self, channel: Channel) -> None:
        while not self.link.should_close and not self._closing:
            data = b""
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick):
                    data = await channel.read()
                if not data and not self._closing:
                    raise LinkError("PMS closed the connection")
            self._feed(data)
        if not self._closing:
            raise LinkError("PMS link timed out; reconnecting")

    def _feed(self, data: bytes) -> None:
        framing = self._framing
        assert framing is not None
        framing.receive_data(data)
        framing.tick()
        while True:
            try:
                item = framing.next_event()
            except RemoteProtocolError as err:
                log.warning("PMS sent a bad record: %s", err)
                continue
            if item is None:
                break
            self._record(item)
        self.link.tick()
        self._flush()
        self._drain_events()

    def _record(self, item: Record | FrameDiscarded) -> None:
        if isinstance(item, FrameDiscarded):
            log.error("PMS never acknowledged %r; discarded", bytes(item.record))
            return
        if isinstance(item, UnknownRecord):
            log.info("PMS sent an unknown record type: %r", bytes(item))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("PMS -> %r", bytes(item))
        self.link.receive(item)

    def _flush(self) -> None:
        framing, channel = self._framing, self._channel
        if framing is None or channel is None:
            return
        data = bytearray(framing.data_to_send())
        for record in self.link.records_to_send():
            if log.isEnabledFor(logging.DEBUG):
                log.debug("PMS <- %r", bytes(record))
            data += framing.send(record)
        if data:
            channel.write(bytes(data))

    def _drain_events(self) -> None:
        while (event := self.link.next_event()) is not None:
            self.on_event(event)


def _ignore(_event: LinkEvent) -> None:
    """Default event handler: the link runs without an application listening."""
