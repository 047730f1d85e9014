"""Lookup and recording webhooks against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from appliance.ivr.hooks import FlowHooks
from tests.loopback_http import LoopbackHttp, Reply


class Dispatch(LoopbackHttp):
    """A loopback server whose answer per path the test chooses."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        super().__init__(self._answer)

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        self.received.append((path, json.loads(body)))
        status, payload = ANSWERS[path]
        if path == "/slow":
            time.sleep(1.5)
        return Reply(status, payload, content_type=None)


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
