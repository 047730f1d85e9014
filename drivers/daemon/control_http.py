"""What the simulators' command lines share: a loopback control server, running until signalled."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Protocol


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler that answers JSON documents and leaves stderr quiet."""

    def _send(self, status: int, document: object) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the simulators log through logging, not stderr."""


class LoopbackControlServer:
    """Serves ``handler`` on loopback from a daemon thread; ``url`` names where."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int, name: str) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and join the thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


class Stoppable(Protocol):
    """Something started that ``stop()`` shuts down."""

    def stop(self) -> None: ...


def serve_until_signalled(announce: Callable[[], None], *running: Stoppable) -> None:
    """Call ``announce``, wait for SIGINT or SIGTERM, then stop ``running`` in reverse order.

    The previous signal handlers are restored afterwards.
    """
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        announce()
        while not stop.wait(0.5):
            pass
    finally:
        for part in reversed(running):
            part.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
