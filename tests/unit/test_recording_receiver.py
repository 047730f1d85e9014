"""The aggregator's recording receiver: direct writes, resume, failures, limits, expiry."""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from aggregator import part_files, recording_store
from aggregator.ingest_metrics import IngestMetrics
from aggregator.recordings import RecordingReceiver
from aggregator.settings import RecordingStoreSettings
from aggregator.store.db import create_engine
from aggregator.store.schema import recordings
from drivers.sync.protocol import (
    ErrorReply,
    Message,
    RecChunk,
    RecCredit,
    RecDone,
    RecOffer,
    RecResume,
)

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
        real_open = os.open

        def no_direct(path: Any, flags: int, *args: Any) -> int:
            if flags & os.O_DIRECT:
                raise OSError(22, "no O_DIRECT here")
            return real_open(path, flags, *args)

        monkeypatch.setattr(os, "open", no_direct)
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
    for rid, payload in payloads.items():  # one upload per site, as sites upload
        assert receiver.offer(f"site-{rid}", offer_of(rid, payload)) == RecResume(rid, 0, 64)
    replies = {}
    for offset in range(0, 3 * 1024 * 1024 + 12, CHUNK):  # interleaved, chunk by chunk
        for rid, payload in payloads.items():
            if offset < len(payload):
                data = payload[offset : offset + CHUNK]
                replies[rid] = receiver.chunk(f"site-{rid}", RecChunk(rid, offset, data))
    assert all(reply == RecDone(rid, True, "stored") for rid, reply in replies.items())
    assert all(stored(tmp_path, payload) == payload for payload in payloads.values())


def limited(tmp_path: Path, **limits: Any) -> tuple[RecordingReceiver, IngestMetrics]:
    engine = create_engine(f"sqlite:///{tmp_path / 'limits.db'}")
    metrics = IngestMetrics(CollectorRegistry())
    settings = RecordingStoreSettings(**limits)
    return RecordingReceiver(engine, tmp_path / "recordings", 64, settings, metrics), metrics


def refused(metrics: IngestMetrics, reason: str) -> float:
    return float(metrics.recordings_refused.labels(site="site-a", reason=reason)._value.get())


def test_an_offer_over_the_size_cap_is_refused_with_its_error_id(tmp_path: Path) -> None:
    rx, metrics = limited(tmp_path, max_bytes=1000)
    try:
        reply = rx.offer("site-a", offer_of("big", b"x" * 1001))
        assert isinstance(reply, RecDone)
        assert not reply.ok
        assert reply.reason.startswith("recording-too-large:")
        assert isinstance(rx.offer("site-a", offer_of("fits", b"x" * 1000)), RecResume)
        assert refused(metrics, "recording-too-large") == 1
        assert not (tmp_path / "recordings" / "incoming" / "site-a" / "big.part").exists()
    finally:
        rx.close()


def test_a_site_over_its_quota_is_refused_and_other_sites_are_not(tmp_path: Path) -> None:
    rx, metrics = limited(tmp_path, site_quota_mb=1)
    first, second = random.randbytes(700 * 1024), random.randbytes(400 * 1024)
    try:
        assert isinstance(rx.offer("site-a", offer_of("r1", first)), RecResume)
        reply = rx.offer("site-a", offer_of("r2", second))
        assert isinstance(reply, RecDone)
        assert reply.reason.startswith("quota-exceeded:"), "an upload in progress counts"
        assert isinstance(send(rx, "r1", first, 0, len(first)), RecDone)
        again = rx.offer("site-a", offer_of("r2", second))
        assert isinstance(again, RecDone)
        assert again.reason.startswith("quota-exceeded:"), "a stored recording counts"
        assert isinstance(rx.offer("site-b", offer_of("r2", second)), RecResume)
        assert refused(metrics, "quota-exceeded") == 2
    finally:
        rx.close()


def test_an_idle_upload_is_closed_and_its_part_file_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rx, metrics = limited(tmp_path, upload_idle_s=30)
    payload = random.randbytes(3 * CHUNK)
    part = tmp_path / "recordings" / "incoming" / "site-a" / "r1.part"
    orphan = part.with_name("left-from-a-restart.part")
    try:
        rx.offer("site-a", offer_of("r1", payload))
        send(rx, "r1", payload, 0, CHUNK)
        orphan.write_bytes(b"old")
        assert rx.sweep() == (0, 0)
        assert part.exists()
        assert orphan.exists()
        later = time.monotonic() + 31
        monkeypatch.setattr(time, "monotonic", lambda: later)
        os.utime(orphan, (time.time() - 31, time.time() - 31))
        assert rx.sweep() == (1, 0)
        assert not part.exists()
        assert not orphan.exists()
        assert metrics.uploads_expired._value.get() == 1
        reply = rx.chunk("site-a", RecChunk("r1", CHUNK, payload[CHUNK : 2 * CHUNK]))
        assert isinstance(reply, ErrorReply)
        assert reply.error_id == "unknown-upload"
    finally:
        rx.close()


def test_a_site_holds_a_few_uploads_at_once_and_its_idlest_is_closed_for_a_new_one(
    receiver: RecordingReceiver,
) -> None:
    payload = random.randbytes(2 * CHUNK)
    for i in range(5):
        assert isinstance(receiver.offer("site-a", offer_of(f"u{i}", payload)), RecResume)
    reply = receiver.chunk("site-a", RecChunk("u0", 0, payload[:CHUNK]))
    assert isinstance(reply, ErrorReply)
    assert reply.error_id == "unknown-upload"
    assert receiver.chunk("site-a", RecChunk("u4", 0, payload[:CHUNK])) is None


def test_retention_expires_old_recordings_and_keeps_files_other_rows_share(
    tmp_path: Path,
) -> None:
    rx, metrics = limited(tmp_path, retention_days=1)
    old, shared = random.randbytes(5000), random.randbytes(6000)
    now_ms = int(time.time() * 1000)
    try:
        for site, rid, payload in (("site-a", "old", old), ("site-a", "s1", shared)):
            rx.offer(site, offer_of(rid, payload))
            send(rx, rid, payload, 0, len(payload))
        with rx.engine.begin() as conn:
            conn.execute(sa.update(recordings).values(stored_ms=now_ms - 2 * 86_400_000))
        rx.offer("site-b", offer_of("s2", shared))
        rx.chunk("site-b", RecChunk("s2", 0, shared))
        assert rx.sweep(now_ms) == (0, 2)
        with rx.engine.connect() as conn:
            assert recording_store.find(conn, "site-a", "old") == recording_store.Found("expired")
            assert recording_store.find(conn, "site-b", "s2").state == "available"  # type: ignore[union-attr]
            assert recording_store.find(conn, "site-a", "never") is None
        assert not (tmp_path / "recordings" / sha_path(old)).exists()
        assert stored(tmp_path, shared) == shared, "site-b's row still needs the file"
        assert metrics.recordings_expired._value.get() == 2
        again = rx.offer("site-a", offer_of("old", old))
        assert again == RecDone("old", True, "expired: stored before and deleted by retention")
    finally:
        rx.close()


def sha_path(payload: bytes) -> str:
    digest = hashlib.sha256(payload).hexdigest()
    return f"{digest[:2]}/{digest}"
