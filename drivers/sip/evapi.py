"""Kamailio's evapi event stream: netstrings carrying one JSON object each.

``NetstringDecoder`` is the sans-I/O core: feed it bytes as they arrive, get complete
payloads back; a malformed length or a payload over ``max_size`` raises NetstringError
(the receive buffer never grows past ``max_size`` plus a length prefix).
``EvapiClient`` connects to Kamailio's evapi port, reconnects with jittered backoff and
hands each event, parsed into its record (``drivers/sip/events.py``), to a callback on
the event loop; an event that does not parse is logged whole (``error_id``
``kamailio-event-invalid``) and dropped. ``send`` writes one JSON
object back as a netstring (Kamailio's ``evapi:message-received`` route reads it);
``rpc`` runs a Kamailio RPC command through that route and waits for its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from typing import Any, cast

from drivers.sip.errors import NetstringError, RpcError
from drivers.sip.events import EventError, KamailioEvent, parse_kamailio_event

log = logging.getLogger(__name__)

MAX_EVENT = 64 * 1024
RPC_TIMEOUT_S = 2.0
_MAX_PREFIX = 10


class NetstringDecoder:
    """Splits a byte stream of ``<len>:<payload>,`` netstrings into payloads."""

    def __init__(self, max_size: int = MAX_EVENT) -> None:
        self._buffer = bytearray()
        self._max = max_size

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return every payload now complete, in order."""
        self._buffer += data
        payloads: list[bytes] = []
        while True:
            colon = self._buffer.find(b":", 0, _MAX_PREFIX + 1)
            if colon < 0:
                if len(self._buffer) > _MAX_PREFIX:
                    raise NetstringError("netstring length prefix missing or too long")
                return payloads
            prefix = bytes(self._buffer[:colon])
            if not prefix.isdigit():
                raise NetstringError(f"netstring length is not a number: {prefix[:12]!r}")
            size = int(prefix)
            if size > self._max:
                raise NetstringError(f"netstring of {size} bytes exceeds {self._max}")
            end = colon + 1 + size
            if len(self._buffer) < end + 1:
                return payloads
            if self._buffer[end : end + 1] != b",":
                raise NetstringError("netstring not terminated by a comma")
            payloads.append(bytes(self._buffer[colon + 1 : end]))
            del self._buffer[: end + 1]


def parse_event(payload: bytes) -> dict[str, Any]:
    """Decode one event payload; raises NetstringError if it is not a JSON object."""
    try:
        event = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise NetstringError(f"event is not JSON: {err}") from None
    if not isinstance(event, dict):
        raise NetstringError("event is not a JSON object")
    return event


class EvapiClient:
    """Keeps a connection to Kamailio's evapi socket and delivers its events."""

    def __init__(
        self,
        host: str,
        port: int,
        on_event: Callable[[KamailioEvent], None] | None = None,
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        self._address = (host, port)
        self._on_event = on_event
        self._on_connect = on_connect
        self._task: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self.connected = asyncio.Event()

    def subscribe(
        self,
        on_event: Callable[[KamailioEvent], None],
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        """Where events go, and who is told of each connection (set before ``start``)."""
        self._on_event, self._on_connect = on_event, on_connect

    def start(self) -> None:
        """Begin connecting in the background."""
        self._task = asyncio.create_task(self._run(), name="evapi-client")

    async def stop(self) -> None:
        """Disconnect and stop reconnecting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.05
        while True:
            try:
                transport, stream = await asyncio.wait_for(
                    loop.create_connection(self._new_stream, *self._address), timeout=2
                )
            except (OSError, TimeoutError):
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            try:
                await stream.closed
            finally:
                self.connected.clear()
                self._transport = None
                transport.close()
                for future in self._pending.values():
                    if not future.done():
                        future.set_exception(ConnectionError("evapi connection lost"))
                self._pending.clear()

    def send(self, message: dict[str, Any]) -> bool:
        """Write one JSON object to Kamailio; False while not connected."""
        if self._transport is None:
            return False
        payload = json.dumps(message, separators=(",", ":")).encode()
        self._transport.write(b"%d:%s," % (len(payload), payload))
        return True

    async def rpc(self, method: str, *params: Any) -> Any:
        """Run Kamailio RPC ``method``; returns its ``result`` or raises RpcError."""
        self._next_id += 1
        rpc_id = f"r{self._next_id}"
        request = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rpc_id] = future
        try:
            if not self.send({"id": rpc_id, "rpc": json.dumps(request)}):
                raise RpcError(f"{method}: not connected to Kamailio")
            answer = await asyncio.wait_for(future, RPC_TIMEOUT_S)
        except (TimeoutError, ConnectionError) as err:
            raise RpcError(f"{method}: no answer from Kamailio ({err or 'timeout'})") from None
        finally:
            self._pending.pop(rpc_id, None)
        try:
            body = json.loads(answer.get("body") or "{}")
        except ValueError:
            body = {}
        if "error" in body or int(answer.get("code") or 0) >= 300:
            error = body.get("error", {})
            raise RpcError(f"{method}: {error.get('message') or answer.get('code')}")
        return body.get("result")

    def _new_stream(self) -> _EvapiStream:
        return _EvapiStream(self._opened, self._deliver)

    def _opened(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.connected.set()
        if self._on_connect is not None:
            self._on_connect()

    def _deliver(self, payload: bytes) -> None:
        try:
            event = parse_event(payload)
        except NetstringError as err:
            log.warning("dropped evapi event: %s", err)
            return
        if event.get("event") == "rpc":
            future = self._pending.get(str(event.get("id")))
            if future is not None and not future.done():
                future.set_result(event)
            return
        if self._on_event is None:
            return
        try:
            record = parse_kamailio_event(event)
        except EventError as err:
            log.error(
                "Kamailio event refused: %s",
                err,
                extra={"error_id": err.error_id, "event": payload.decode(errors="replace")},
            )
            return
        try:
            self._on_event(record)
        except Exception:
            log.exception("handling evapi event failed", extra={"event": record.kind})


class _EvapiStream(asyncio.Protocol):
    """One connection: each chunk Kamailio writes is split and delivered as it arrives,
    in the transport's callback (no stream reader or task wake-up per event)."""

    def __init__(
        self, opened: Callable[[asyncio.Transport], None], deliver: Callable[[bytes], None]
    ) -> None:
        self._opened = opened
        self._deliver = deliver
        self._decoder = NetstringDecoder()
        self._transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP connection's transport (create_connection in EvapiClient._run).
        self._transport = cast(asyncio.Transport, transport)
        self._opened(self._transport)

    def data_received(self, data: bytes) -> None:
        try:
            payloads = self._decoder.feed(data)
        except NetstringError as err:
            log.error("evapi stream corrupt, reconnecting: %s", err)
            self._end()
            return
        for payload in payloads:
            self._deliver(payload)

    def eof_received(self) -> bool:
        log.warning("evapi connection closed by Kamailio")
        self._end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.warning("evapi connection lost, reconnecting: %s", exc)
        self._end()

    def _end(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if not self.closed.done():
            self.closed.set_result(None)
