"""The appliance's recording uploader: bad recordings are quarantined, the queue moves on."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.settings import RecordingSettings
from appliance.store import Outbox, StateStore, Store
from appliance.sync.recordings import RecordingUploader, register_recording
from drivers.sync.protocol import Message, RecChunk, RecDone, RecOffer, RecResume

TRIES = 3


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


@pytest.fixture
def reasons() -> list[str]:
    return []


@pytest.fixture
def uploader(store: Store, reasons: list[str]) -> RecordingUploader:
    settings = RecordingSettings(upload_max_tries=TRIES, upload_retry_s=5.0)
    return RecordingUploader(
        Outbox(store, "recording"), StateStore(store), settings, 4096, reasons.append
    )


def queue(store: Store, folder: Path, rid: str, payload: bytes = b"RIFF" * 100) -> Path:
    wav = folder / f"{rid}.wav"
    wav.write_bytes(payload)
    register_recording(Outbox(store, "recording"), rid, wav, {"cdr_id": f"cdr-{rid}"})
    return wav


def offered(messages: list[Message]) -> str | None:
    offers = [m for m in messages if isinstance(m, RecOffer)]
    return offers[0].recording_id if offers else None


def test_a_missing_file_is_quarantined_at_once_and_the_next_recording_is_offered(
    store: Store, uploader: RecordingUploader, tmp_path: Path, reasons: list[str]
) -> None:
    queue(store, tmp_path, "rec-1").unlink()
    queue(store, tmp_path, "rec-2")
    assert offered(uploader.next_messages(0.0)) == "rec-2"
    assert uploader.quarantined()["rec-1"]["error_id"] == "file-missing"
    assert reasons == ["file-missing"]
    assert uploader.outbox.pending() == 1
    ok, detail = uploader.health()
    assert ok
    assert "1 quarantined" in detail
    assert "rec-1 (file-missing)" in detail


def test_a_file_changed_after_queueing_is_quarantined_when_hq_finds_the_mismatch(
    store: Store, uploader: RecordingUploader, tmp_path: Path
) -> None:
    wav = queue(store, tmp_path, "rec-1")
    queue(store, tmp_path, "rec-2")
    assert offered(uploader.next_messages(0.0)) == "rec-1"
    wav.write_bytes(b"something else entirely")
    replies = uploader.on_message(RecDone("rec-1", False, "sha256-mismatch: upload again"), 1.0)
    assert replies == []
    assert uploader.quarantined()["rec-1"]["error_id"] == "sha256-changed"
    assert offered(uploader.next_messages(2.0)) == "rec-2"


def test_a_file_that_cannot_be_read_counts_a_try_each_time_until_quarantined(
    store: Store, uploader: RecordingUploader, tmp_path: Path
) -> None:
    wav = queue(store, tmp_path, "rec-1", b"x" * 10000)
    queue(store, tmp_path, "rec-2")
    now = 0.0
    for attempt in range(1, TRIES + 1):
        assert offered(uploader.next_messages(now)) == "rec-1"
        wav.write_bytes(b"")  # shorter than offered: reading the chunks fails
        assert uploader.on_message(RecResume("rec-1", 0, 4), now) == []
        assert uploader.current is None
        wav.write_bytes(b"x" * 10000)
        if attempt < TRIES:
            assert uploader.next_messages(now + 1) == [], "no offer during the pause"
            assert uploader.state.get("recording:tries:rec-1") == attempt
        now += 6
    assert uploader.quarantined()["rec-1"]["error_id"] == "file-unreadable"
    assert offered(uploader.next_messages(now)) == "rec-2"


def test_hq_refusals_are_tries_and_a_quota_refusal_only_pauses(
    store: Store, uploader: RecordingUploader, tmp_path: Path
) -> None:
    queue(store, tmp_path, "rec-1")
    queue(store, tmp_path, "rec-2")
    for attempt in range(5):
        assert offered(uploader.next_messages(attempt * 10.0)) == "rec-1"
        uploader.on_message(RecDone("rec-1", False, "quota-exceeded: site full"), attempt * 10.0)
        assert uploader.next_messages(attempt * 10.0 + 1) == []
    assert uploader.quarantined() == {}
    for attempt in range(TRIES):
        now = 100.0 + attempt * 10
        assert offered(uploader.next_messages(now)) == "rec-1"
        uploader.on_message(RecDone("rec-1", False, "recording-too-large: over 1 MiB"), now)
    assert uploader.quarantined()["rec-1"]["error_id"] == "refused-by-hq"
    assert offered(uploader.next_messages(200.0)) == "rec-2"


def test_a_confirmed_upload_clears_its_tries(
    store: Store, uploader: RecordingUploader, tmp_path: Path
) -> None:
    payload = b"y" * 5000
    queue(store, tmp_path, "rec-1", payload)
    assert offered(uploader.next_messages(0.0)) == "rec-1"
    uploader.on_message(RecDone("rec-1", False, "storage-unavailable: retry"), 0.0)
    assert uploader.state.get("recording:tries:rec-1") == 1
    assert offered(uploader.next_messages(10.0)) == "rec-1"
    chunks = uploader.on_message(RecResume("rec-1", 0, 8), 10.0)
    assert b"".join(bytes(c.data) for c in chunks if isinstance(c, RecChunk)) == payload
    assert hashlib.sha256(payload).hexdigest() == uploader.current.sha256  # type: ignore[union-attr]
    uploader.on_message(RecDone("rec-1", True, "stored"), 11.0)
    assert uploader.state.get("recording:tries:rec-1") is None
    assert uploader.outbox.pending() == 0
    assert uploader.quarantined() == {}


def test_has_work_only_when_an_offer_or_a_chunk_is_due(
    store: Store, uploader: RecordingUploader, tmp_path: Path
) -> None:
    assert uploader.has_work(0.0), "an empty queue is only known by reading the outbox"
    queue(store, tmp_path, "rec-1", b"z" * 10_000)
    assert offered(uploader.next_messages(0.0)) == "rec-1"
    assert not uploader.has_work(0.0), "offered: waiting for HQ's answer"
    chunks = uploader.on_message(RecResume("rec-1", 0, 1), 0.0)
    assert len(chunks) == 1
    assert not uploader.has_work(0.0), "credit spent: waiting for more"
    uploader.on_message(RecDone("rec-1", False, "quota-exceeded: full"), 0.0)
    assert not uploader.has_work(1.0), "offers paused"
    assert uploader.has_work(10.0)
