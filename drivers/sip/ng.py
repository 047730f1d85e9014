"""rtpengine's ng control protocol: bencoded dictionaries over UDP, each behind a cookie.

The core (``encode_command``/``decode_reply`` and the bencode codec) is sans-I/O; the
``NgClient`` adapter sends one datagram and waits (bounded) for the reply carrying the
same cookie.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

from drivers.sip.errors import NgError

Bencodable = bytes | str | int | list[Any] | dict[str, Any]

MAX_DEPTH = 32


def bencode(value: Bencodable) -> bytes:
    """Encode ``value`` (str, bytes, int, list, dict with str keys) as bencode."""
    if isinstance(value, bool):
        raise NgError("bencode has no booleans; send 'yes'/'no' strings")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted(value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise NgError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    """Decode one bencoded value occupying all of ``data`` (strings come back as str)."""
    value, end = _decode_at(data, 0, 0)
    if end != len(data):
        raise NgError(f"trailing bytes after bencoded value at offset {end}")
    return value


def _decode_at(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise NgError(f"bencode nested deeper than {MAX_DEPTH}")
    if pos >= len(data):
        raise NgError("bencode truncated")
    lead = data[pos : pos + 1]
    if lead == b"i":
        end = data.find(b"e", pos)
        if end < 0:
            raise NgError("bencode integer not terminated")
        return _int(data[pos + 1 : end]), end + 1
    if lead in (b"l", b"d"):
        return _decode_container(data, pos + 1, lead == b"d", depth + 1)
    colon = data.find(b":", pos)
    if colon < 0 or not data[pos:colon].isdigit():
        raise NgError(f"bencode string length expected at offset {pos}")
    end = colon + 1 + int(data[pos:colon])
    if end > len(data):
        raise NgError("bencode string truncated")
    return data[colon + 1 : end].decode(errors="replace"), end


def _decode_container(data: bytes, pos: int, is_dict: bool, depth: int) -> tuple[Any, int]:
    items: list[Any] = []
    while data[pos : pos + 1] != b"e":
        value, pos = _decode_at(data, pos, depth)
        items.append(value)
    if is_dict:
        if len(items) % 2:
            raise NgError("bencode dictionary with a key and no value")
        return dict(zip(items[::2], items[1::2], strict=True)), pos + 1
    return items, pos + 1


def _int(raw: bytes) -> int:
    try:
        return int(raw)
    except ValueError:
        raise NgError(f"bencode integer expected, got {raw[:20]!r}") from None


def encode_command(cookie: str, command: str, **params: Bencodable) -> bytes:
    """One ng request datagram: ``<cookie> <bencoded dict>``."""
    return cookie.encode() + b" " + bencode({"command": command, **params})


def decode_reply(datagram: bytes) -> tuple[str, dict[str, Any]]:
    """Split a reply datagram into its cookie and dictionary."""
    cookie, sep, body = datagram.partition(b" ")
    if not sep:
        raise NgError("ng reply without a cookie")
    reply = bdecode(body)
    if not isinstance(reply, dict):
        raise NgError("ng reply is not a dictionary")
    return cookie.decode(errors="replace"), reply


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        with contextlib.suppress(NgError):
            cookie, reply = decode_reply(data)
            future = self.waiting.pop(cookie, None)
            if future is not None and not future.done():
                future.set_result(reply)


class NgClient:
    """Sends ng commands to one rtpengine and returns their reply dictionaries."""

    def __init__(self, host: str, port: int, timeout: float = 2.0) -> None:
        self._address = (host, port)
        self._timeout = timeout

    async def command(self, command: str, **params: Bencodable) -> dict[str, Any]:
        """Send ``command``; return the reply or raise NgError (timeout, error result)."""
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            _Protocol, remote_addr=self._address
        )
        cookie = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        protocol.waiting[cookie] = future
        try:
            transport.sendto(encode_command(cookie, command, **params))
            reply = await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            raise NgError(f"rtpengine at {self._address} did not answer {command!r}") from None
        finally:
            transport.close()
        if reply.get("result") == "error":
            raise NgError(f"rtpengine refused {command!r}: {reply.get('error-reason', '?')}")
        return reply

    async def ping(self) -> bool:
        """Whether rtpengine answers ``ping`` with ``pong``."""
        try:
            reply = await self.command("ping")
        except NgError:
            return False
        return reply.get("result") == "pong"
