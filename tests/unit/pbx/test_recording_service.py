"""Finished recordings become WAVs named per call and queued for upload with their CDR."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import msgpack
import pytest

from appliance.pbx.calls import CallService
from appliance.pbx.cdr import CdrBuilder
from appliance.pbx.conversion import worker_init
from appliance.pbx.recordings import RecordingService
from appliance.store import Outbox, Store
from tests.unit.pbx.call_events import call_event
from tests.unit.pbx.test_recording import METADATA, _write_pcap

T0 = 1_790_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


def finish_call(calls: CallService, start: float) -> dict[str, Any]:
    base = {"call_id": "abc", "from_user": "1001", "from_tag": "ft", "request_user": "1002"}
    calls.handle(call_event({**base, "event": "invite", "ts": str(start)}))
    calls.handle(call_event({**base, "event": "answer", "ts": str(start + 1)}))
    cdr = calls.handle(
        call_event({**base, "event": "end", "ts": str(start + 3), "reason": "caller"})
    )
    assert cdr is not None
    return cdr


def rtpengine_finished(spool: Path, unique: str) -> None:
    """What rtpengine leaves for a purged call: its pcap and metadata (same Call-ID)."""
    pcap = spool / "pcaps" / f"abc-{unique}.pcap"
    _write_pcap(pcap, 25)
    text = METADATA.replace("/spool/pcaps/abc-0123456789abcdef.pcap", str(pcap))
    (spool / "metadata" / f"rtpengine-meta-abc-{unique}.txt").write_text(text)


async def test_a_reused_call_id_gives_each_call_its_own_wav_queued_with_its_cdr(
    store: Store, tmp_path: Path
) -> None:
    spool, wav_dir = tmp_path / "spool", tmp_path / "recordings"
    for folder in (spool / "pcaps", spool / "metadata", spool / "recover", wav_dir):
        folder.mkdir(parents=True)
    calls = CallService(store, CdrBuilder("site-a", {"1001": "Alice", "1002": "Bob"}))
    service = RecordingService(store, calls, spool, wav_dir)
    cdrs = []
    for n, unique in enumerate(("0123456789abcdef", "fedcba9876543210")):
        cdrs.append(finish_call(calls, T0 + 100 * n))
        rtpengine_finished(spool, unique)
        assert await service.process_pending() == 1
    ids = [cdr["recording_id"] for cdr in cdrs]
    assert len(set(ids)) == 2
    assert sorted(p.name for p in wav_dir.iterdir()) == sorted(f"{rid}.wav" for rid in ids)
    check_queued(store, service, cdrs)
    assert list((spool / "metadata").iterdir()) == []


def check_queued(store: Store, service: RecordingService, cdrs: list[dict[str, Any]]) -> None:
    """Each CDR's WAV is in the index and in the upload outbox, in order, with its CDR id."""
    queued = [msgpack.unpackb(raw) for _, raw in Outbox(store, "recording").read_batch()]
    assert [q["recording_id"] for q in queued] == [cdr["recording_id"] for cdr in cdrs]
    for entry, cdr in zip(queued, cdrs, strict=True):
        wav = Path(entry["path"])
        assert entry["sha256"] == hashlib.sha256(wav.read_bytes()).hexdigest()
        assert entry["meta"]["cdr_id"] == cdr["cdr_id"]
        assert entry["meta"]["call_id"] == "abc"
        index = service.get(entry["recording_id"])
        assert index is not None
        assert index["cdr_id"] == cdr["cdr_id"]
        assert index["path"] == str(wav)


def _scheduling_policy() -> int:
    return os.sched_getscheduler(0)


def test_the_conversion_worker_runs_only_on_cpu_time_nothing_else_wants() -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=worker_init) as pool:
        assert pool.submit(_scheduling_policy).result(timeout=30) == os.SCHED_IDLE
