"""The simulated IFC's TCP server: one asyncio loop in a background thread.

As the real IFC, it is the server and keeps one client: the last one to connect wins and the
previous connection is dropped. Control calls from other threads run on the loop through
:meth:`PmsSimulator.call`, so the core has one owner.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from drivers.fias.errors import RemoteProtocolError
from drivers.fias.grammar import Record
from drivers.fias.protocol import FiasProtocol
from drivers.fias.simulator.core import PmsCore, Reply

log = logging.getLogger(__name__)
T = TypeVar("T")
_CALL_TIMEOUT_S = 10.0


class PmsSimulator:
    """A FIAS server on 127.0.0.1 holding a :class:`PmsCore`."""

    def __init__(self, core: PmsCore | None = None, host: str = "127.0.0.1", port: int = 0):
        self.core = core or PmsCore()
        self._host, self._requested_port = host, port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pms-sim", daemon=True)
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._protocol = FiasProtocol()
        self.connections = 0

    def start(self) -> None:
        """Listen; returns once the port is bound."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(_CALL_TIMEOUT_S)

    def stop(self) -> None:
        """Close the server and the client connection, stop the loop."""
        future = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
        with contextlib.suppress(concurrent.futures.TimeoutError):
            future.result(_CALL_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CALL_TIMEOUT_S)

    def act(self, action: Callable[[PmsCore], list[Reply]]) -> int:
        """Run ``action`` on the loop and send the records it returns; returns how many."""

        async def run() -> int:
            replies = action(self.core)
            self._send(replies)
            return len(replies)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(_CALL_TIMEOUT_S)

    def query(self, question: Callable[[PmsCore], T]) -> T:
        """Run ``question`` on the loop and return its answer."""

        async def run() -> T:
            return question(self.core)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(_CALL_TIMEOUT_S)

    def drop(self) -> bool:
        """Close the client connection abruptly (no LE)."""

        async def run() -> bool:
            writer, self._writer = self._writer, None
            self.core.link_active = False
            if writer is None:
                return False
            writer.transport.abort()
            return True

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(_CALL_TIMEOUT_S)

    def send_raw(self, data: bytes) -> bool:
        """Write ``data`` unframed to the client (fault injection: garbage, broken records)."""

        async def run() -> bool:
            if self._writer is None:
                return False
            self._writer.write(data)
            return True

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(_CALL_TIMEOUT_S)

    @property
    def connected(self) -> bool:
        """Whether a client is connected."""
        return self._writer is not None

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._client, self._host, self._requested_port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
            self._writer = None
        if self._server is not None:
            self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:
            log.info("a new client connected: dropping the previous one")
            self._writer.transport.abort()
        self._writer = writer
        self._protocol = FiasProtocol()
        self.connections += 1
        self._send(self.core.connected())
        try:
            while data := await reader.read(65536):
                if writer is not self._writer:
                    return
                self._feed(data)
        except OSError as err:
            log.info("client connection failed: %s", err)
        finally:
            if self._writer is writer:
                self._writer = None
                self.core.link_active = False
            writer.close()

    def _feed(self, data: bytes) -> None:
        self._protocol.receive_data(data)
        while True:
            try:
                record = self._protocol.next_event()
            except RemoteProtocolError as err:
                self.core.received.append(f"!{err}")
                continue
            if record is None:
                return
            self._send(self.core.receive(record))

    def _send(self, replies: list[Reply]) -> None:
        writer = self._writer
        if writer is None:
            return
        for delay, record in replies:
            if delay <= 0:
                self._write(writer, record)
            else:
                self._loop.call_later(delay, self._write, writer, record)

    def _write(self, writer: asyncio.StreamWriter, record: Record) -> None:
        if writer is self._writer:
            writer.write(self._protocol.send(record))
            self.core.sent(record)
