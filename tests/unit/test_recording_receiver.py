"""The aggregator's recording receiver: staged direct writes, resume and write failures."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator import part_files
from aggregator.recordings import RecordingReceiver
from aggregator.store.db import create_engine
from drivers.sync.protocol import Message, RecChunk, RecCredit, RecDone, RecOffer, RecResume

CHUNK = 256 * 1024


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[RecordingReceiver]:
    engine = create_engine(f"sqlite:///{tmp_path / 'agg.db'}")
    rx = RecordingReceiver(engine, tmp_path / "recordings", credit=64)
    yield rx
    rx.close()
    engine.dispose()


def offer_of(rid: str, payload: bytes) -> RecOffer:
    return RecOffer(rid, len(payload), hashlib.sha256(payload).hexdigest(), {})


def send(rx: RecordingReceiver, rid: str, payload: bytes, start: int, end: int) -> Message | None:
    """Chunks of ``payload[start:end]``; the reply to the last one."""
    reply = None
    for offset in range(start, end, CHUNK):
        data = payload[offset : min(offset + CHUNK, end)]
        reply = rx.chunk("site-a", RecChunk(rid, offset, data))
        assert reply is None or isinstance(reply, RecCredit | RecDone), reply
    return reply


def stored(root: Path, payload: bytes) -> bytes:
    digest = hashlib.sha256(payload).hexdigest()
    return (root / "recordings" / digest[:2] / digest).read_bytes()


@pytest.mark.parametrize("direct", [True, False], ids=["o-direct", "page-cache"])
def test_unaligned_tail_and_both_write_paths_store_the_exact_bytes(
    receiver: RecordingReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    if not direct:
        real_open = part_files.os.open

        def no_direct(path: Any, flags: int, *args: Any) -> int:
            if flags & part_files.os.O_DIRECT:
                raise OSError(22, "no O_DIRECT here")
            return real_open(path, flags, *args)

        monkeypatch.setattr(part_files.os, "open", no_direct)
    payload = random.Random(1).randbytes(9 * 1024 * 1024 + 1234)
    assert receiver.offer("site-a", offer_of("r1", payload)) == RecResume("r1", 0, 64)
    assert send(receiver, "r1", payload, 0, len(payload)) == RecDone("r1", True, "stored")
    assert stored(tmp_path, payload) == payload


def test_staged_bytes_of_a_lost_session_are_sent_again(
    receiver: RecordingReceiver, tmp_path: Path
) -> None:
    payload = random.Random(2).randbytes(6 * 1024 * 1024)
    offer = offer_of("r2", payload)
    receiver.offer("site-a", offer)
    send(receiver, "r2", payload, 0, 5 * 1024 * 1024)  # 4 MiB written, the fifth staged
    resume = receiver.offer("site-a", offer)  # a new session offers again
    assert resume == RecResume("r2", 4 * 1024 * 1024, 64)
    assert send(receiver, "r2", payload, 4 * 1024 * 1024, len(payload)) == RecDone(
        "r2", True, "stored"
    )
    assert stored(tmp_path, payload) == payload


def test_a_failed_direct_write_cuts_the_file_back_and_the_upload_resumes(
    receiver: RecordingReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = random.Random(3).randbytes(12 * 1024 * 1024)
    offer = offer_of("r3", payload)
    real_write = part_files._write
    failures = [4 * 1024 * 1024]  # the write of the second 4 MiB fails

    def failing(fd: int, data: Any, offset: int) -> None:
        if offset in failures:
            failures.remove(offset)
            raise OSError(28, "No space left on device")
        real_write(fd, data, offset)

    monkeypatch.setattr(part_files, "_write", failing)
    receiver.offer("site-a", offer)
    with pytest.raises(OSError, match="No space"):
        send(receiver, "r3", payload, 0, len(payload))
    part = tmp_path / "recordings" / "incoming" / "site-a" / "r3.part"
    assert part.stat().st_size == 4 * 1024 * 1024
    assert receiver.chunk("site-a", RecChunk("r3", 0, b"")).error_id == "unknown-upload"  # type: ignore[union-attr]
    assert receiver.offer("site-a", offer) == RecResume("r3", 4 * 1024 * 1024, 64)
    assert send(receiver, "r3", payload, 4 * 1024 * 1024, len(payload)) == RecDone(
        "r3", True, "stored"
    )
    assert stored(tmp_path, payload) == payload


def test_refused_direct_writes_fall_back_to_the_page_cache(
    receiver: RecordingReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = random.Random(4).randbytes(6 * 1024 * 1024 + 100)
    offer = offer_of("r4", payload)
    real_write = part_files._write

    def no_big_writes(fd: int, data: Any, offset: int) -> None:
        if len(data) > CHUNK:  # only the staged O_DIRECT writes are larger than a chunk
            raise OSError(22, "Invalid argument")
        real_write(fd, data, offset)

    monkeypatch.setattr(part_files, "_write", no_big_writes)
    receiver.offer("site-a", offer)
    with pytest.raises(OSError, match="Invalid argument"):
        send(receiver, "r4", payload, 0, len(payload))
    assert receiver.offer("site-a", offer) == RecResume("r4", 0, 64)
    assert send(receiver, "r4", payload, 0, len(payload)) == RecDone("r4", True, "stored")
    assert stored(tmp_path, payload) == payload


def test_more_uploads_than_staging_buffers_all_store_their_bytes(
    receiver: RecordingReceiver, tmp_path: Path
) -> None:
    payloads = {f"m{i}": random.Random(10 + i).randbytes(3 * 1024 * 1024 + i) for i in range(12)}
    for rid, payload in payloads.items():
        assert receiver.offer("site-a", offer_of(rid, payload)) == RecResume(rid, 0, 64)
    replies = {}
    for offset in range(0, 3 * 1024 * 1024 + 12, CHUNK):  # interleaved, chunk by chunk
        for rid, payload in payloads.items():
            if offset < len(payload):
                data = payload[offset : offset + CHUNK]
                replies[rid] = receiver.chunk("site-a", RecChunk(rid, offset, data))
    assert all(reply == RecDone(rid, True, "stored") for rid, reply in replies.items())
    assert all(stored(tmp_path, payload) == payload for payload in payloads.values())
