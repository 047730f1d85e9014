"""Lookup and recording webhooks against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from appliance.ivr.hooks import FlowHooks


class Dispatch:
    """A loopback server whose answer per path the test chooses."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.append((self.path, body))
                status, payload = ANSWERS[self.path]
                if self.path == "/slow":
                    time.sleep(1.5)
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


ANSWERS = {
    "/ok": (200, b'{"consultant": "anna", "address": "12 Harbour Road"}'),
    "/slow": (200, b'{"consultant": "late"}'),
    "/error": (500, b'{"consultant": "anna"}'),
    "/html": (200, b"<html>maintenance</html>"),
    "/list": (200, b'["anna"]'),
    "/voice": (204, b""),
}


@pytest.fixture
def dispatch() -> Iterator[Dispatch]:
    server = Dispatch()
    yield server
    server.close()


def ask(dispatch: Dispatch, path: str, timeout_s: float = 1.0) -> dict[str, Any] | None:
    async def run() -> dict[str, Any] | None:
        hooks = FlowHooks()
        try:
            return await hooks.ask(dispatch.base + path, {"caller": "1001"}, timeout_s)
        finally:
            await hooks.close()

    return asyncio.run(run())


def test_a_lookup_returns_the_json_object_and_posts_the_caller(dispatch: Dispatch) -> None:
    assert ask(dispatch, "/ok") == {"consultant": "anna", "address": "12 Harbour Road"}
    assert dispatch.received == [("/ok", {"caller": "1001"})]


@pytest.mark.parametrize("path", ["/slow", "/error", "/html", "/list"])
def test_a_lookup_that_times_out_fails_or_answers_garbage_gives_none(
    dispatch: Dispatch, path: str
) -> None:
    started = time.monotonic()
    assert ask(dispatch, path, timeout_s=0.5) is None
    assert time.monotonic() - started < 1.4


def test_a_lookup_to_a_closed_port_gives_none() -> None:
    async def run() -> dict[str, Any] | None:
        hooks = FlowHooks()
        try:
            return await hooks.ask("http://127.0.0.1:9/none", {}, 0.5)
        finally:
            await hooks.close()

    assert asyncio.run(run()) is None


def test_a_recording_is_delivered_with_its_metadata_and_audio(dispatch: Dispatch) -> None:
    async def run() -> bool:
        hooks = FlowHooks()
        try:
            return await hooks.deliver(dispatch.base + "/voice", {"caller": "1001"}, b"RIFF....")
        finally:
            await hooks.close()

    assert asyncio.run(run()) is True
    ((path, body),) = dispatch.received
    assert path == "/voice"
    assert body["caller"] == "1001"
    assert body["audio"]["content_type"] == "audio/wav"
    assert base64.b64decode(body["audio"]["base64"]) == b"RIFF...."
