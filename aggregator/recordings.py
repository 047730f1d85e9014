"""Receives recordings in chunks, resumable, verified by sha256, stored by content hash.

Theory of operation: a partial upload is a ``.part`` file whose size is the offset the
aggregator holds, so an upload resumes after any crash on either side. A chunk is
accepted only at exactly that offset; anything else is answered with the offset to
resume from. Those rules, the credit and which uploads are open are the sans-I/O core
in drivers/sync/uploads.py; this adapter owns the files, the hashes and the rows.
When the file reaches the offered size it is fsync'd, hashed and compared with the
offer; a match moves it to ``<dir>/<sha[:2]>/<sha>`` and records it, a mismatch
discards it so the appliance starts over.

The ``.part`` file is written by ``PartFile`` (aggregator/part_files.py): direct
writes from staging buffers, so receiving allocates no page-cache pages.

Limits (``recordings`` settings): an offer larger than ``max_bytes`` is refused
(``recording-too-large``), and so is one that would take the site past
``site_quota_mb`` counting what it holds and its uploads in progress
(``quota-exceeded``); both are counted in ``callmesh_recordings_refused``. ``sweep``
(every ``sweep_interval_s``, on the same thread as offers and chunks) closes uploads
that received nothing for ``upload_idle_s`` and deletes their ``.part`` files (and
any left from before a restart), and expires recordings past ``retention_days``
(aggregator/recording_store.py).
"""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from aggregator import recording_store
from aggregator.ingest_metrics import IngestMetrics
from aggregator.part_files import PartFile, StagePool
from aggregator.settings import RecordingStoreSettings
from aggregator.store.db import insert
from aggregator.store.schema import recordings
from drivers.sync.protocol import Message, RecChunk, RecDone, RecOffer
from drivers.sync.uploads import Complete, Incoming, Key, UploadReceiver, Write

log = logging.getLogger(__name__)

UPLOADS_PER_SITE = 4
SAFE_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass
class _PartFile:
    """The file and running hash of an upload the core tracks under the same key."""

    path: Path
    hasher: Any
    out: PartFile


class RecordingReceiver:
    """Handles rec-offer and rec-chunk for every site; runs on the ingest worker thread."""

    def __init__(
        self,
        engine: sa.Engine,
        root: Path,
        credit: int,
        settings: RecordingStoreSettings | None = None,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self.engine = engine
        self.root = root
        self.credit = credit
        self.settings = settings or RecordingStoreSettings()
        self.metrics = metrics
        self.bytes_received = 0
        self.core = UploadReceiver(credit, UPLOADS_PER_SITE)
        self._files: dict[Key, _PartFile] = {}
        self._writer = concurrent.futures.ThreadPoolExecutor(1, "recording-write")
        self._stages = StagePool()
        self._direct = True

    def close(self) -> None:
        """Close partial uploads (they resume on the next offer) and the writer thread."""
        for key in list(self._files):
            self._drop(*key)
        self._writer.shutdown(wait=True)

    def offer(self, site_id: str, offer: RecOffer) -> Message:
        """Answer an offer: already stored, or where to resume."""
        rid = offer.recording_id
        if not rid or set(rid) - SAFE_ID or len(rid) > 64 or len(offer.sha256) != 64:
            return RecDone(rid, False, "bad-offer: recording_id or sha256 malformed")
        held = self._stored_sha(site_id, rid)
        if held == offer.sha256:
            return RecDone(rid, True, "already stored")
        if held == "expired":
            return RecDone(rid, True, "expired: stored before and deleted by retention")
        self._drop(site_id, rid)
        idlest = self.core.idlest(site_id)
        if idlest is not None:
            self._drop(*idlest)
        refusal = self._refusal(site_id, offer)
        if refusal is not None:
            return refusal
        part = self.root / "incoming" / site_id / f"{rid}.part"
        part.parent.mkdir(parents=True, exist_ok=True)
        if part.exists() and part.stat().st_size > offer.size:
            part.unlink()
        out = PartFile(part, self._writer, self._stages, self._direct)
        try:
            hasher = _hash_of(part, out.size)
        except OSError:
            out.close()
            raise
        files = _PartFile(part, hasher, out)
        answer = self.core.open(site_id, offer, out.size, time.monotonic())
        if isinstance(answer, Complete):
            return self._finish(site_id, answer.upload, files)
        self._files[(site_id, rid)] = files
        return answer

    def _refusal(self, site_id: str, offer: RecOffer) -> RecDone | None:
        """A refusal when the offer is over the size cap or the site's quota."""
        limits = self.settings
        if offer.size < 0 or offer.size > limits.max_bytes:
            why = f"recording-too-large: {offer.size} bytes, HQ takes at most {limits.max_bytes}"
            return self._refuse(site_id, offer.recording_id, why)
        incoming = self.core.incoming_bytes(site_id)
        with self.engine.connect() as conn:
            used = recording_store.site_bytes(conn, site_id) + incoming
        quota = limits.site_quota_mb * 1024 * 1024
        if used + offer.size > quota:
            why = f"quota-exceeded: site {site_id} uses {used} of {quota} bytes"
            return self._refuse(site_id, offer.recording_id, why)
        return None

    def _refuse(self, site_id: str, recording_id: str, why: str) -> RecDone:
        reason = why.split(":")[0]
        log.warning(
            "recording offer refused",
            extra={"site": site_id, "recording": recording_id, "reason": why},
        )
        if self.metrics is not None:
            self.metrics.recordings_refused.labels(site=site_id, reason=reason).inc()
        return RecDone(recording_id, False, why)

    def sweep(self, now_ms: int | None = None) -> tuple[int, int]:
        """Expire idle uploads and old recordings; returns how many of each."""
        stale = self._expire_uploads(time.monotonic() - self.settings.upload_idle_s)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        before = now_ms - int(self.settings.retention_days * 86_400_000)
        expired = 0
        while True:
            with self.engine.begin() as conn:
                moved, unused = recording_store.expire(conn, before, now_ms)
            if not moved:
                break
            expired += moved
            recording_store.remove_files(self.root, unused)
        if self.metrics is not None:
            self.metrics.uploads_expired.inc(stale)
            self.metrics.recordings_expired.inc(expired)
        return stale, expired

    def _expire_uploads(self, idle_since: float) -> int:
        """Close uploads idle since ``idle_since``; delete their and orphaned ``.part`` files."""
        stale = self.core.idle(idle_since)
        for site_id, rid in stale:
            path = self._files[(site_id, rid)].path
            self._drop(site_id, rid)
            path.unlink(missing_ok=True)
        active = {f.path for f in self._files.values()}
        horizon = time.time() - self.settings.upload_idle_s
        for part in (self.root / "incoming").glob("*/*.part"):
            if part not in active and part.stat().st_mtime < horizon:
                part.unlink(missing_ok=True)
        if stale:
            log.info("closed idle recording uploads", extra={"uploads": len(stale)})
        return len(stale)

    def chunk(self, site_id: str, chunk: RecChunk) -> Message | None:
        """Append a chunk at the held offset; credit comes back in batches of half.

        OSError when the chunk cannot be written; the upload is then forgotten, and the
        next offer resumes from what the file holds.
        """
        step = self.core.chunk(site_id, chunk, time.monotonic())
        if not isinstance(step, Write):
            return step
        files = self._files[(site_id, chunk.recording_id)]
        try:
            files.out.append(chunk.data)
        except OSError as err:
            self._drop(site_id, chunk.recording_id)
            self._write_failed(err)
            raise
        files.hasher.update(chunk.data)
        self.bytes_received += len(chunk.data)
        answer = self.core.written(site_id, chunk)
        if isinstance(answer, Complete):
            del self._files[(site_id, chunk.recording_id)]
            return self._finish(site_id, answer.upload, files)
        return answer

    def _write_failed(self, err: OSError) -> None:
        """Direct writes refused (EINVAL: alignment the device does not take): stop using them."""
        if err.errno == errno.EINVAL and self._direct:
            self._direct = False
            log.warning(
                "O_DIRECT writes are refused here; recordings go through the page cache",
                extra={"path": str(self.root), "error": str(err)},
            )

    def _drop(self, site_id: str, recording_id: str) -> None:
        self.core.forget((site_id, recording_id))
        stale = self._files.pop((site_id, recording_id), None)
        if stale is not None:
            stale.out.close()

    def _finish(self, site_id: str, upload: Incoming, files: _PartFile) -> Message:
        offer = upload.offer
        try:
            files.out.sync()
        except OSError as err:
            self._write_failed(err)
            raise
        finally:
            files.out.close()
        digest = files.hasher.hexdigest()
        if digest != offer.sha256:
            files.path.unlink()
            log.warning(
                "recording checksum mismatch",
                extra={"site": site_id, "recording": offer.recording_id},
            )
            return RecDone(offer.recording_id, False, "sha256-mismatch: upload again from 0")
        final = self.root / digest[:2] / digest
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(files.path, final)
        _fsync_dir(final.parent)
        row = {
            "site_id": site_id,
            "recording_id": offer.recording_id,
            "cdr_id": offer.meta.get("cdr_id"),
            "sha256": digest,
            "size": offer.size,
            "path": str(final.relative_to(self.root)),
            "meta": _jsonable(offer.meta),
            "stored_ms": int(time.time() * 1000),
        }
        stmt = insert(self.engine, recordings).on_conflict_do_nothing(
            index_elements=["site_id", "recording_id"]
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, row)
        return RecDone(offer.recording_id, True, "stored")

    def _stored_sha(self, site_id: str, recording_id: str) -> str | None:
        with self.engine.connect() as conn:
            return recording_store.stored_sha(conn, site_id, recording_id)


def _hash_of(path: Path, size: int) -> Any:
    """A sha256 object fed with the first ``size`` bytes already held in ``path``."""
    digest = hashlib.sha256()
    if size:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in meta.items() if isinstance(v, str | int | float | bool)}
