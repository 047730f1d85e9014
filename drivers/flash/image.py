"""A raw disk image and the SHA-256 it is published with (``IMAGE.sha256``, sha256sum format).

The checksum file must carry a detached OpenPGP signature by a trusted release key
(``IMAGE.sha256.asc`` or ``.sig``, ``drivers.signature``), checked before its hash is used.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drivers.flash.errors import ImageError
from drivers.signature import SignatureError, verify

CHUNK = 4 * 1024 * 1024
_SHA256_LINE = re.compile(r"^([0-9a-fA-F]{64})(?:\s+\*?(\S.*))?$")


@dataclass(frozen=True)
class Image:
    """An image file, its size and the checksum it must have."""

    path: Path
    size: int
    sha256: str

    @classmethod
    def open(cls, path: Path, trusted: Path, checksum_file: Path | None = None) -> Image:
        """The image at ``path`` with the signed checksum from ``checksum_file`` (or beside it).

        ``trusted`` is the directory of trusted release keys.
        """
        checksum_file = checksum_file or path.with_name(path.name + ".sha256")
        try:
            size = path.stat().st_size
        except OSError as err:
            raise ImageError("image-unreadable", f"cannot read image {path}: {err}") from err
        if size == 0:
            raise ImageError("image-empty", f"image {path} is empty")
        return cls(path, size, _expected_sha256(checksum_file, path.name, trusted))

    def check(self, progress: Callable[[int], None] | None = None) -> None:
        """Hash the whole image; raise ``checksum-mismatch`` unless it is the published one."""
        digest = hashlib.sha256()
        with self.path.open("rb") as source:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                if progress:
                    progress(len(chunk))
        if digest.hexdigest() != self.sha256:
            raise ImageError(
                "checksum-mismatch",
                f"{self.path} has SHA-256 {digest.hexdigest()}, but its checksum file says "
                f"{self.sha256}: the download is damaged or not this image; fetch it again",
            )


def _expected_sha256(checksum_file: Path, image_name: str, trusted: Path) -> str:
    try:
        signed = checksum_file.read_bytes()
    except OSError as err:
        raise ImageError(
            "checksum-missing",
            f"no checksum for the image ({checksum_file}: {err.strerror}); "
            "publish IMAGE.sha256 beside it or name one with --checksum",
        ) from err
    try:
        verify(signed, checksum_file, trusted)
    except SignatureError as err:
        raise ImageError(err.error_id, str(err)) from err
    for line in signed.decode(errors="replace").splitlines():
        found = _SHA256_LINE.match(line.strip())
        if found and found.group(2) in (None, image_name):
            return found.group(1).lower()
    raise ImageError(
        "checksum-invalid",
        f"{checksum_file} has no SHA-256 line for {image_name} (sha256sum format expected)",
    )
