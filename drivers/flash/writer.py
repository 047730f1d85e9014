"""Copy an image onto a device, then read the device back and compare.

The device is opened exclusively (``O_EXCL`` on a block device fails while anything has
it mounted), written in 4 MiB chunks and flushed with ``fsync``. Verification first drops
the device's cached pages, so the bytes compared are the ones the medium returns, not the
ones still in memory from the write.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator

from drivers.flash.errors import TargetError, VerifyError
from drivers.flash.image import CHUNK, Image
from drivers.flash.target import Target

Progress = Callable[[int], None]
BLKFLSBUF = 0x1261


def write(image: Image, target: Target, progress: Progress | None = None) -> None:
    """Write every byte of ``image`` to the start of ``target``."""
    target.require_room_for(image.size)
    with image.path.open("rb") as source, _device(target, os.O_WRONLY) as fd:
        while chunk := source.read(CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[_write(fd, view, target) :]
            if progress:
                progress(len(chunk))
        os.fsync(fd)


def verify(image: Image, target: Target, progress: Progress | None = None) -> None:
    """Raise ``VerifyError`` unless the device starts with exactly the image's bytes."""
    digest = hashlib.sha256()
    done = 0
    with image.path.open("rb") as source, _device(target, os.O_RDONLY) as fd:
        _drop_cache(fd)
        while expected := source.read(CHUNK):
            found = os.pread(fd, len(expected), done)
            if found != expected:
                offset = done + _first_difference(expected, found)
                raise VerifyError(
                    "verify-mismatch",
                    f"{target.path} differs from the image at byte {offset}: the medium may "
                    "be failing; flash again, and replace it if this repeats",
                )
            digest.update(found)
            done += len(found)
            if progress:
                progress(len(found))
    if digest.hexdigest() != image.sha256:
        raise VerifyError(
            "verify-checksum", f"{target.path} read back with SHA-256 {digest.hexdigest()}"
        )


@contextlib.contextmanager
def _device(target: Target, mode: int) -> Iterator[int]:
    try:
        fd = os.open(target.path, mode | os.O_EXCL | os.O_CLOEXEC)
    except OSError as err:
        raise TargetError(
            "device-busy", f"cannot open {target.path} exclusively: {err.strerror}"
        ) from err
    try:
        yield fd
    finally:
        os.close(fd)


def _write(fd: int, data: memoryview, target: Target) -> int:
    try:
        return os.write(fd, data)
    except OSError as err:
        raise TargetError("write-failed", f"writing {target.path} failed: {err.strerror}") from err


def _drop_cache(fd: int) -> None:
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, BLKFLSBUF)


def _first_difference(expected: bytes, found: bytes) -> int:
    for offset, (a, b) in enumerate(zip(expected, found, strict=False)):
        if a != b:
            return offset
    return min(len(expected), len(found))
