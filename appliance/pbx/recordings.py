"""Recordings: rtpengine's finished pcaps become two-channel WAVs indexed in the store.

A poll loop looks at ``metadata/`` (calls rtpengine purged) and ``recover/`` (calls an
rtpengine crash left in ``tmp/``, moved there by ``adopt_orphans``). A recording is
converted when its call was answered, discarded when the call ended unanswered, and
kept waiting while the call is still open. Calls unknown to the call service (their
events were lost) are converted once the files are ``UNKNOWN_GRACE_S`` old. The WAV is
``<recording id>.wav``. A recording started on demand mid-call has no SDPs in its
metadata; the ports each side sends to come from the call record instead (rtpengine's
``query`` at start). The recording id comes from the call's CDR id (``recording_id`` in
the CDR), so a phone that reuses a Call-ID never overwrites an earlier call's WAV; a
call without a CDR gets an id from its metadata file's name. The index entry
(StateStore ``pbx-recordings``, keyed by recording id) and the upload entry in the
``recording`` outbox (appliance/sync/recordings.py; meta: CDR id, Call-ID, seconds) are
written in one commit, after the WAV is fsync'd. pcap and metadata are deleted then.

Decisions and the index run on the event loop; the conversion itself runs in one
worker process (``appliance/pbx/conversion.py``, which imports only the decoder), so
decoding audio never holds the loop's GIL while Kamailio waits for a routing answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import re
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import msgpack

from appliance.pbx.calls import CallService
from appliance.pbx.cdr import recording_id
from appliance.pbx.conversion import convert, warm_up, worker_init
from appliance.store import Outbox, StateStore, Store
from appliance.sync.recordings import upload_entry
from drivers.sip.errors import RecordingError
from drivers.sip.recording import RecordingMeta, parse_metadata

log = logging.getLogger(__name__)

INDEX = "pbx-recordings"
UNKNOWN_GRACE_S = 60.0
_META_NAME = re.compile(r"^rtpengine-meta-(.+)-[0-9a-f]{16}\.(txt|tmp)$")


class RecordingService:
    """Turns rtpengine recordings into indexed WAV files."""

    def __init__(self, store: Store, calls: CallService, spool: Path, wav_dir: Path) -> None:
        self.index = StateStore(store, INDEX)
        self._store = store
        self._index_db = store.db(INDEX)
        self._uploads = Outbox(store, "recording")
        self._calls = calls
        self._spool = spool
        self._wav_dir = wav_dir
        self._task: asyncio.Task[None] | None = None
        self._pool: Executor | None = None

    def start(self) -> None:
        """Start the conversion worker and begin polling for finished recordings."""
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=worker_init)
        self._pool.submit(warm_up)
        self._task = asyncio.create_task(self._poll(), name="recordings")

    async def stop(self) -> None:
        """Convert what is ready, stop polling and the worker."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.process_pending()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def adopt_orphans(self) -> int:
        """Move a dead rtpengine's in-progress metadata to ``recover/``; returns how many."""
        recover = self._spool / "recover"
        recover.mkdir(parents=True, exist_ok=True)
        moved = 0
        for tmp in sorted((self._spool / "tmp").glob("rtpengine-meta-*.tmp")):
            tmp.replace(recover / tmp.name)
            moved += 1
        if moved:
            log.warning("recovering %d recordings of interrupted calls", moved)
        return moved

    def get(self, rec_id: str) -> dict[str, Any] | None:
        """The index entry of a recording."""
        entry: dict[str, Any] | None = self.index.get(rec_id)
        return entry

    async def _poll(self) -> None:
        while True:
            try:
                await self.process_pending()
            except Exception:
                log.exception("recording pass failed")
            await asyncio.sleep(0.5)

    async def process_pending(self) -> int:
        """Convert or discard every recording that is ready; returns how many were handled."""
        handled = 0
        for meta_file in self._ready_files():
            loaded = self._load(meta_file)
            if loaded is None:
                continue
            call_id, meta = loaded
            decision = self._decide(call_id, meta_file)
            if decision == "wait":
                continue
            if decision == "convert":
                await self._convert(call_id, meta, meta_file)
            _remove(meta.pcap, meta_file)
            handled += 1
        return handled

    def _ready_files(self) -> list[Path]:
        found: list[Path] = []
        for folder in ("metadata", "recover"):
            found += sorted((self._spool / folder).glob("rtpengine-meta-*"))
        return found

    def _load(self, meta_file: Path) -> tuple[str, RecordingMeta] | None:
        match = _META_NAME.match(meta_file.name)
        if match is None:
            return None
        try:
            meta = parse_metadata(meta_file.read_text(errors="replace"))
        except (OSError, RecordingError) as err:
            log.error("unreadable recording metadata %s: %s", meta_file, err)
            meta_file.rename(meta_file.with_suffix(".bad"))
            return None
        return meta.tags.get("cid", match.group(1)), meta

    def _decide(self, call_id: str, meta_file: Path) -> str:
        self._calls.flush()  # a call that just ended: its CDR may still be staged
        done = self._calls.done.get(call_id)
        if done is not None:
            return "convert" if done["answered"] else "discard"
        call = self._calls.open.get(call_id)
        if call is not None:
            recovered = meta_file.parent.name == "recover"
            return "convert" if call.get("answer") and recovered else "wait"
        age = time.time() - meta_file.stat().st_mtime
        return "convert" if age > UNKNOWN_GRACE_S else "wait"

    async def _convert(self, call_id: str, meta: RecordingMeta, meta_file: Path) -> None:
        known = self._calls.done.get(call_id) or self._calls.open.get(call_id) or {}
        rec_id = self._recording_id(known, meta_file)
        if (meta.caller_port is None or meta.callee_port is None) and known.get("rtp_ports"):
            caller_port, callee_port = known["rtp_ports"]
            meta = dataclasses.replace(meta, caller_port=caller_port, callee_port=callee_port)
        wav = self._wav_dir / f"{rec_id}.wav"
        loop = asyncio.get_running_loop()
        try:
            seconds, size, digest = await loop.run_in_executor(self._pool, convert, meta, wav)
        except RecordingError as err:
            log.error("recording of %s lost: %s", call_id, err)
            return
        self._store_and_queue({
            "recording_id": rec_id,
            "call_id": call_id,
            "cdr_id": known.get("cdr_id"),
            "path": str(wav),
            "duration_s": round(seconds, 3),
            "bytes": size,
            "sha256": digest,
            "recovered": meta_file.parent.name == "recover",
            "created": time.time(),
        })  # fmt: skip
        log.info("recording stored", extra={"recording_id": rec_id, "seconds": seconds})

    def _recording_id(self, known: dict[str, Any], meta_file: Path) -> str:
        """The CDR's recording id; a call without a CDR gets one from its metadata file."""
        site = self._calls.builder.site_id
        return recording_id(site, known.get("cdr_id") or f"unknown:{meta_file.name}")

    def _store_and_queue(self, entry: dict[str, Any]) -> None:
        """Index the WAV and queue it for upload in one commit, so neither exists alone."""
        rec_id = entry["recording_id"]
        upload = upload_entry(rec_id, Path(entry["path"]), entry["sha256"], upload_meta(entry))
        with self._store.write() as txn:
            txn.put(rec_id.encode(), msgpack.packb(entry, use_bin_type=True), db=self._index_db)
            self._uploads.append_in(txn, [upload])


def upload_meta(entry: dict[str, Any]) -> dict[str, Any]:
    """What HQ is told about a recording beside its bytes: the CDR link first of all."""
    keys = ("cdr_id", "call_id", "duration_s", "recovered")
    return {key: entry[key] for key in keys if entry.get(key) is not None}


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
