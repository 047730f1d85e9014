"""Partial recording files written without filling the page cache.

Chunks are gathered in page-aligned staging buffers and written with ``O_DIRECT`` in
1 MiB writes on a writer thread, beside the hashing, so receiving allocates no
page-cache pages: on a virtual machine, page-cache writes into newly allocated pages
took the aggregator's receiver most of its time (bench/RESULTS.md, "Sync link").

These go through the page cache instead: a chunk that is not block-aligned (the last of
a file), chunks that find no free staging buffer, every chunk on a filesystem without
``O_DIRECT`` (tmpfs), and every chunk of a ``PartFile`` opened with ``direct=False``
(the receiver's choice once a device has refused a direct write with EINVAL). So that
the single fsync at the end does not have to write all of those then, their writeback
is started every ``WRITEBACK_BYTES`` (``posix_fadvise(DONTNEED)`` starts it without
waiting and drops the pages once written: recordings are not read back while stored).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import mmap
import os
from pathlib import Path

from drivers.sync.protocol import Frame

WRITEBACK_BYTES = 8 * 1024 * 1024
BLOCK = 4096
STAGE_BYTES = 1024 * 1024
STAGES = 16


class StagePool:
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


class PartFile:
    """A partial upload, appended at its size.

    Block-aligned chunks are gathered in a staging buffer; a full one is written with
    O_DIRECT on the writer thread while the next fills. Other chunks, and chunks that
    find no free staging buffer, are written through the page cache after whatever is
    staged. ``size`` counts staged bytes: an acknowledgement only follows ``sync``, and
    after a crash the file's own size is where the upload resumes.
    """

    def __init__(
        self, path: Path, writer: concurrent.futures.Executor, pool: StagePool, direct: bool
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
