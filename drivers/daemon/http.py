"""An HTTP server for an ASGI app that binds its socket up front.

Binding before the event loop serves lets a service fail at start-up with a clear
``address in use`` error instead of a log line from deep inside uvicorn, and lets the
service own signal handling (uvicorn's own handlers are disabled).

Exceptions::

    BindError      the configured address cannot be bound (in use, not local, no permission)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


class BindError(Exception):
    """The HTTP address cannot be bound."""


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or BindError saying what to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as err:
        sock.close()
        reason = {
            errno.EADDRINUSE: "address already in use (another process listens there; "
            "stop it or choose another port)",
            errno.EADDRNOTAVAIL: "address not available on this machine",
            errno.EACCES: "permission denied (ports below 1024 need privileges)",
        }.get(err.errno or 0, err.strerror or str(err))
        raise BindError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The service's lifecycle owns SIGTERM/SIGINT.
        yield


class HttpServer:
    """Serves one ASGI app on an already-bound socket until ``stop``."""

    def __init__(self, app: Any, host: str, port: int, name: str = "http") -> None:
        self._sock = bind_tcp(host, port)
        self.app = app
        self.host = host
        self.port = self._sock.getsockname()[1]
        self.name = name
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin serving; returns once the server accepts connections."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        for _ in range(500):
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()
        log.info("%s listening", self.name, extra={"address": f"{self.host}:{self.port}"})

    async def stop(self) -> None:
        """Stop accepting, finish open requests (bounded), close the socket."""
        self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except TimeoutError:
                self._server.force_exit = True
                self._task.cancel()
        self._sock.close()
