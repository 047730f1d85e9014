"""Receives recordings in chunks, resumable, verified by sha256, stored by content hash.

Theory of operation: a partial upload is a ``.part`` file whose size is the offset the
aggregator holds, so an upload resumes after any crash on either side. A chunk is
accepted only at exactly that offset; anything else is answered with the offset to
resume from. When the file reaches the offered size it is fsync'd, hashed and compared
with the offer; a match moves it to ``<dir>/<sha[:2]>/<sha>`` and records it, a mismatch
discards it so the appliance starts over.

Chunks are gathered in page-aligned staging buffers and written with ``O_DIRECT`` in
1 MiB writes on a writer thread, beside the hashing, so receiving allocates no
page-cache pages: on a virtual machine, page-cache writes into newly allocated pages
took the receiver most of its time (bench/RESULTS.md, "Sync link"). These go through
the page cache instead: a chunk that is not block-aligned (the last of a file), every
chunk on a filesystem without ``O_DIRECT`` (tmpfs), and every chunk once a device has
refused a direct write (EINVAL). So that the single fsync at the end does not have to
write all of those then, their writeback is started every ``WRITEBACK_BYTES``
(``posix_fadvise(DONTNEED)`` starts it without waiting and drops the pages once
written: recordings are not read back while stored).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import hashlib
import logging
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from aggregator.store.db import insert
from aggregator.store.schema import recordings
from drivers.sync.protocol import (
    ErrorReply,
    Frame,
    Message,
    RecChunk,
    RecCredit,
    RecDone,
    RecOffer,
    RecResume,
)

log = logging.getLogger(__name__)

WRITEBACK_BYTES = 8 * 1024 * 1024
SAFE_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


BLOCK = 4096
STAGE_BYTES = 1024 * 1024
STAGES = 16


class _StagePool:
    """Page-aligned staging buffers shared by all uploads, at most ``STAGES`` of them.

    Used from the ingest worker thread only. When every buffer is taken (many uploads
    at once), further chunks go through the page cache, so memory stays bounded.
    """

    def __init__(self) -> None:
        self._free: list[memoryview] = []
        self._made = 0

    def take(self) -> memoryview | None:
        if self._free:
            return self._free.pop()
        if self._made == STAGES:
            return None
        self._made += 1
        return memoryview(mmap.mmap(-1, STAGE_BYTES))

    def give(self, stage: memoryview) -> None:
        self._free.append(stage)


class _PartFile:
    """A partial upload, appended at its size.

    Block-aligned chunks are gathered in a staging buffer; a full one is written with
    O_DIRECT on the writer thread while the next fills. Other chunks, and chunks that
    find no free staging buffer, are written through the page cache after whatever is
    staged. ``size`` counts staged bytes: an acknowledgement only follows ``sync``, and
    after a crash the file's own size is where the upload resumes.
    """

    def __init__(
        self, path: Path, writer: concurrent.futures.Executor, pool: _StagePool, direct: bool
    ) -> None:
        self.size = path.stat().st_size if path.exists() else 0
        self._buffered = os.open(path, os.O_WRONLY | os.O_CREAT, 0o640)
        self._direct: int | None = None
        if direct:
            with contextlib.suppress(OSError):  # EINVAL where the filesystem has no O_DIRECT
                self._direct = os.open(path, os.O_WRONLY | os.O_DIRECT)
        self._writer = writer
        self._pool = pool
        self._filling: memoryview | None = None
        self._staged = 0
        self._pending: concurrent.futures.Future[None] | None = None
        self._pending_stage: memoryview | None = None
        self._pending_at = 0
        self._written_back = self.size

    def append(self, data: Frame) -> None:
        """Add ``data`` at the end.

        OSError, for this chunk or for a staged write before it, cuts the file back to
        where the failed write began; the upload must then resume from the file.
        """
        size, n = self.size, len(data)
        if self._staged + n > STAGE_BYTES:
            self._flush()
        aligned = self._direct is not None and size % BLOCK == 0 and n % BLOCK == 0
        if aligned and self._filling is None:
            self._filling = self._pool.take()
        if aligned and self._filling is not None:
            self._filling[self._staged : self._staged + n] = data
            self._staged += n
        else:
            self._flush()
            self._settle()
            try:
                _write(self._buffered, data, size)
            except OSError:
                os.ftruncate(self._buffered, size)
                raise
            if size + n - self._written_back >= WRITEBACK_BYTES:
                start, self._written_back = self._written_back, size + n
                os.posix_fadvise(self._buffered, start, size + n - start, os.POSIX_FADV_DONTNEED)
        self.size += n

    def sync(self) -> None:
        """Everything appended on disk (OSError as for ``append``)."""
        self._flush()
        self._settle()
        os.fsync(self._buffered)

    def close(self) -> None:
        """Close; staged bytes are dropped (the upload resumes from the file)."""
        with contextlib.suppress(OSError):
            self._settle()
        if self._filling is not None:
            self._pool.give(self._filling)
            self._filling = None
        os.close(self._buffered)
        if self._direct is not None:
            os.close(self._direct)

    def _flush(self) -> None:
        """Start writing the staged bytes; the next chunks fill another buffer."""
        if not self._staged:
            return
        self._settle()
        assert self._direct is not None
        assert self._filling is not None
        at = self.size - self._staged
        self._pending_stage, self._pending_at = self._filling, at
        self._pending = self._writer.submit(_write, self._direct, self._filling[: self._staged], at)
        self._filling, self._staged = None, 0

    def _settle(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        assert self._pending_stage is not None
        try:
            pending.result()
        except OSError:
            os.ftruncate(self._buffered, self._pending_at)
            self.size = self._pending_at
            self._staged = 0
            raise
        finally:
            self._pool.give(self._pending_stage)
            self._pending_stage = None


def _write(fd: int, data: Frame, offset: int) -> None:
    if os.pwrite(fd, data, offset) != len(data):
        raise OSError(errno.ENOSPC, "short write: the recordings disk is full")


@dataclass
class _Upload:
    offer: RecOffer
    path: Path
    hasher: Any
    out: _PartFile
    owed: int = 0


class RecordingReceiver:
    """Handles rec-offer and rec-chunk for every site; runs on the ingest worker thread."""

    def __init__(self, engine: sa.Engine, root: Path, credit: int) -> None:
        self.engine = engine
        self.root = root
        self.credit = credit
        self.bytes_received = 0
        self._uploads: dict[tuple[str, str], _Upload] = {}
        self._writer = concurrent.futures.ThreadPoolExecutor(1, "recording-write")
        self._stages = _StagePool()
        self._direct = True

    def close(self) -> None:
        """Close partial uploads (they resume on the next offer) and the writer thread."""
        for key in list(self._uploads):
            self._drop(*key)
        self._writer.shutdown(wait=True)

    def offer(self, site_id: str, offer: RecOffer) -> Message:
        """Answer an offer: already stored, or where to resume."""
        rid = offer.recording_id
        if not rid or set(rid) - SAFE_ID or len(rid) > 64 or len(offer.sha256) != 64:
            return RecDone(rid, False, "bad-offer: recording_id or sha256 malformed")
        if self._stored_sha(site_id, rid) == offer.sha256:
            return RecDone(rid, True, "already stored")
        part = self.root / "incoming" / site_id / f"{rid}.part"
        part.parent.mkdir(parents=True, exist_ok=True)
        self._drop(site_id, rid)
        if part.exists() and part.stat().st_size > offer.size:
            part.unlink()
        out = _PartFile(part, self._writer, self._stages, self._direct)
        held = out.size
        try:
            hasher = _hash_of(part, held)
        except OSError:
            out.close()
            raise
        self._uploads[(site_id, rid)] = _Upload(offer, part, hasher, out)
        if held == offer.size:
            return self._finish(site_id, self._uploads.pop((site_id, rid)))
        return RecResume(rid, held, self.credit)

    def chunk(self, site_id: str, chunk: RecChunk) -> Message | None:
        """Append a chunk at the held offset; credit comes back in batches of half.

        OSError when the chunk cannot be written; the upload is then forgotten, and the
        next offer resumes from what the file holds.
        """
        upload = self._uploads.get((site_id, chunk.recording_id))
        if upload is None:
            return ErrorReply("unknown-upload", "offer the recording again", chunk.recording_id)
        held = upload.out.size
        if chunk.offset != held or held + len(chunk.data) > upload.offer.size:
            return RecResume(chunk.recording_id, held, self.credit)
        try:
            upload.out.append(chunk.data)
        except OSError as err:
            self._drop(site_id, chunk.recording_id)
            self._write_failed(err)
            raise
        upload.hasher.update(chunk.data)
        self.bytes_received += len(chunk.data)
        if upload.out.size == upload.offer.size:
            return self._finish(site_id, self._uploads.pop((site_id, chunk.recording_id)))
        upload.owed += 1
        if upload.owed * 2 < self.credit:
            return None
        granted, upload.owed = upload.owed, 0
        return RecCredit(chunk.recording_id, granted)

    def _write_failed(self, err: OSError) -> None:
        """Direct writes refused (EINVAL: alignment the device does not take): stop using them."""
        if err.errno == errno.EINVAL and self._direct:
            self._direct = False
            log.warning(
                "O_DIRECT writes are refused here; recordings go through the page cache",
                extra={"path": str(self.root), "error": str(err)},
            )

    def _drop(self, site_id: str, recording_id: str) -> None:
        stale = self._uploads.pop((site_id, recording_id), None)
        if stale is not None:
            stale.out.close()

    def _finish(self, site_id: str, upload: _Upload) -> Message:
        offer = upload.offer
        try:
            upload.out.sync()
        except OSError as err:
            self._write_failed(err)
            raise
        finally:
            upload.out.close()
        digest = upload.hasher.hexdigest()
        if digest != offer.sha256:
            upload.path.unlink()
            log.warning(
                "recording checksum mismatch",
                extra={"site": site_id, "recording": offer.recording_id},
            )
            return RecDone(offer.recording_id, False, "sha256-mismatch: upload again from 0")
        final = self.root / digest[:2] / digest
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(upload.path, final)
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
        query = sa.select(recordings.c.sha256).where(
            recordings.c.site_id == site_id, recordings.c.recording_id == recording_id
        )
        with self.engine.connect() as conn:
            sha: str | None = conn.scalar(query)
            return sha


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
