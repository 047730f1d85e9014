"""The loopback HTTP endpoint Kamailio's ``http_client`` asks for each call's route.

It has no authentication (an answer can reserve a GSM channel), so it only ever listens
on loopback: ``RouteServer`` refuses any other address.

``parse_request`` is the sans-I/O core: the bytes of one HTTP/1.x request head in, the
path and query parameters out (RouteRequestError for anything else; heads are capped at
``MAX_HEAD``). ``RouteServer`` answers each connection once with a JSON object and
closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from drivers.sip.errors import ConfigValueError, SipDriverError

log = logging.getLogger(__name__)

MAX_HEAD = 8192
READ_TIMEOUT_S = 2.0


class RouteRequestError(SipDriverError):
    """A request the route endpoint cannot answer."""


def parse_request(head: bytes) -> tuple[str, dict[str, str]]:
    """Path and (last-wins) query parameters of a GET request head.

    ``+`` stays a plus (Kamailio's ``s.escape.param`` leaves it as is in E.164 numbers).
    """
    if len(head) > MAX_HEAD:
        raise RouteRequestError("request head too large")
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != "GET" or not parts[2].startswith("HTTP/1."):
        raise RouteRequestError(f"unsupported request line {line[:80]!r}")
    url = urlsplit(parts[1])
    query = {}
    for pair in url.query.split("&"):
        key, _, value = pair.partition("=")
        if key:
            query[unquote(key)] = unquote(value)
    return url.path, query


def response(status: int, body: Mapping[str, Any]) -> bytes:
    """An HTTP/1.1 response carrying ``body`` as JSON, closing the connection."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Server Error"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + payload


def _undecided(_query: Mapping[str, str]) -> Mapping[str, Any]:
    raise RouteRequestError("no routing decision is wired to the route endpoint")


class RouteServer:
    """Answers ``GET /route?...`` with ``decide(query)``."""

    def __init__(
        self,
        host: str,
        port: int,
        decide: Callable[[Mapping[str, str]], Mapping[str, Any]] = _undecided,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ConfigValueError(f"the route endpoint must listen on loopback, not {host}")
        self._address = (host, port)
        self._decide = decide
        self._server: asyncio.Server | None = None

    def answer_with(self, decide: Callable[[Mapping[str, str]], Mapping[str, Any]]) -> None:
        """Answer every request with ``decide(query)`` from now on (set before ``start``)."""
        self._decide = decide

    async def start(self) -> None:
        """Listen on loopback."""
        self._server = await asyncio.start_server(self._serve, *self._address)

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            writer.write(self._answer(head))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            log.warning("route request not read completely")
        except ConnectionError:
            log.warning("route client went away")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, head: bytes) -> bytes:
        try:
            path, query = parse_request(head)
        except RouteRequestError as err:
            return response(400, {"error": str(err)})
        if path != "/route":
            return response(404, {"error": "unknown path"})
        try:
            return response(200, self._decide(query))
        except Exception:
            log.exception("routing decision failed", extra={"query": query})
            return response(500, {"error": "routing failed"})
