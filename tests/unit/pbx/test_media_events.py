"""The appliance's end of a worker's stdout: events reach the subscriber as records, a bad
event line is logged with its error_id and skipped, and reading goes on."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import cast

import pytest

from appliance.pbx.media import MediaWorker
from drivers.media.protocol import Event, Load, RoomEvent, WorkerConfig

STDOUT = b"".join([
    b'@ev {"ev":"load","calls":1,"capacity":4}\n',
    b"pjsua_core.c  .TX 512 bytes Request msg OPTIONS\n",
    b'@ev {"ev":"leg","id":"op-1","state":"parked"}\n',
    b'@ev {"ev":"room","room":"1","members":2,"call_id":"r1"}\n',
    b"@ev [1, 2]\n",
])  # fmt: skip


class Proc:
    """The one part of a worker process ``_read`` uses: its stdout."""

    def __init__(self, stdout: asyncio.StreamReader) -> None:
        self.stdout = stdout


def test_bad_event_lines_are_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = WorkerConfig("w0", "127.0.0.1", 5090, "127.0.0.1", 5060, "test.local", "127.0.0.1")
    worker = MediaWorker(config, tmp_path)
    seen: list[Event] = []
    worker.subscribe(lambda _w, event: seen.append(event), lambda _w: None, lambda _w: None)

    async def read() -> None:
        stdout = asyncio.StreamReader()
        stdout.feed_data(STDOUT)
        stdout.feed_eof()
        await worker._read(cast(asyncio.subprocess.Process, Proc(stdout)))

    with caplog.at_level(logging.WARNING, logger="appliance.pbx.media"):
        asyncio.run(read())
    assert seen == [Load(calls=1, capacity=4), RoomEvent("1", 2, "r1")]
    assert worker.calls == 1
    ids = [getattr(r, "error_id", "") for r in caplog.records]
    assert ids == ["media-field-type", "media-line-not-json"]
