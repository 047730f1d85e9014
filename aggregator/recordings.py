"""Receives recordings in chunks, resumable, verified by sha256, stored by content hash.

Theory of operation: a partial upload is a ``.part`` file whose size is the offset the
aggregator holds, so an upload resumes after any crash on either side. A chunk is
accepted only at exactly that offset; anything else is answered with the offset to
resume from. When the file reaches the offered size it is fsync'd, hashed and compared
with the offer; a match moves it to ``<dir>/<sha[:2]>/<sha>`` and records it, a mismatch
discards it so the appliance starts over.

The file is fsync'd once, at the end. So that this fsync does not have to write the
whole file then, writeback of every ``WRITEBACK_BYTES`` received is started as they
arrive (``posix_fadvise(DONTNEED)`` starts it without waiting, and drops the pages from
the cache once written: the aggregator does not read recordings back while storing).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa

from aggregator.store.db import insert
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

log = logging.getLogger(__name__)

WRITEBACK_BYTES = 8 * 1024 * 1024
SAFE_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass
class _Upload:
    offer: RecOffer
    path: Path
    hasher: Any
    held: int
    out: BinaryIO
    owed: int = 0
    written_back: int = 0


class RecordingReceiver:
    """Handles rec-offer and rec-chunk for every site; runs on the ingest worker thread."""

    def __init__(self, engine: sa.Engine, root: Path, credit: int) -> None:
        self.engine = engine
        self.root = root
        self.credit = credit
        self.bytes_received = 0
        self._uploads: dict[tuple[str, str], _Upload] = {}

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
        held = part.stat().st_size if part.exists() else 0
        if held > offer.size:
            part.unlink()
            held = 0
        out = part.open("ab", buffering=0)
        self._uploads[(site_id, rid)] = _Upload(offer, part, _hash_of(part, held), held, out)
        if held == offer.size:
            return self._finish(site_id, self._uploads.pop((site_id, rid)))
        return RecResume(rid, held, self.credit)

    def chunk(self, site_id: str, chunk: RecChunk) -> Message | None:
        """Append a chunk at the held offset; credit comes back in batches of half.

        OSError when the chunk cannot be written; the file is left at the held offset.
        """
        upload = self._uploads.get((site_id, chunk.recording_id))
        if upload is None:
            return ErrorReply("unknown-upload", "offer the recording again", chunk.recording_id)
        held = upload.held
        if chunk.offset != held or held + len(chunk.data) > upload.offer.size:
            return RecResume(chunk.recording_id, held, self.credit)
        if upload.out.write(chunk.data) != len(chunk.data):
            upload.out.truncate(held)
            raise OSError(errno.ENOSPC, "short write: the recordings disk is full")
        upload.hasher.update(chunk.data)
        upload.held += len(chunk.data)
        self.bytes_received += len(chunk.data)
        if upload.held - upload.written_back >= WRITEBACK_BYTES:
            start, upload.written_back = upload.written_back, upload.held
            os.posix_fadvise(
                upload.out.fileno(), start, upload.held - start, os.POSIX_FADV_DONTNEED
            )
        if upload.held == upload.offer.size:
            return self._finish(site_id, self._uploads.pop((site_id, chunk.recording_id)))
        upload.owed += 1
        if upload.owed * 2 < self.credit:
            return None
        granted, upload.owed = upload.owed, 0
        return RecCredit(chunk.recording_id, granted)

    def _drop(self, site_id: str, recording_id: str) -> None:
        stale = self._uploads.pop((site_id, recording_id), None)
        if stale is not None:
            stale.out.close()

    def _finish(self, site_id: str, upload: _Upload) -> Message:
        offer = upload.offer
        os.fsync(upload.out.fileno())
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
