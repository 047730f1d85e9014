"""The partitions of a GPT disk image, their bytes, and files in its FAT (EFI) partition.

``sfdisk --json`` reads the partition table; mtools reads the FAT file system in place
(``IMAGE@@OFFSET``), so nothing is mounted and no loop device is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drivers.flash.errors import ImageError

CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Partition:
    """One partition of an image: its GPT label, where it starts and its size, in bytes."""

    name: str
    offset: int
    size: int


def partitions(image: Path) -> dict[str, Partition]:
    """The image's partitions by GPT label."""
    done = _tool(["sfdisk", "--json", str(image)])
    try:
        table = json.loads(done)["partitiontable"]
        sector = int(table.get("sectorsize", 512))
        found = [
            Partition(p.get("name", ""), int(p["start"]) * sector, int(p["size"]) * sector)
            for p in table["partitions"]
        ]
    except (ValueError, KeyError, TypeError) as err:
        raise ImageError("image-not-gpt", f"{image} has no readable GPT: {err}") from err
    return {p.name: p for p in found if p.name}


def copy_partition(
    image: Path, part: Partition, target: Path, progress: Callable[[int], None]
) -> None:
    """Write the bytes of ``part`` to ``target`` (a partition), then fsync it."""
    with image.open("rb") as source, target.open("r+b") as out:
        source.seek(part.offset)
        left = part.size
        while left:
            chunk = source.read(min(CHUNK, left))
            if not chunk:
                raise ImageError("image-truncated", f"{image} ends inside {part.name}")
            out.write(chunk)
            left -= len(chunk)
            progress(len(chunk))
        out.flush()
        os.fsync(out.fileno())


def fat_read(image: Path, part: Partition, name: str) -> bytes:
    """The file ``name`` (``dir/file``) of the FAT file system in ``part``."""
    argv = ["mcopy", "-n", "-i", f"{image}@@{part.offset}", f"::{name}", "-"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ImageError("image-unreadable", f"mcopy: {err}") from err
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()
        raise ImageError("image-incomplete", f"{image}: no {name} in {part.name}: {said}")
    return done.stdout


def _tool(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ImageError("image-unreadable", f"{argv[0]}: {err}") from err
    if done.returncode != 0:
        raise ImageError("image-not-gpt", f"{argv[-1]}: {done.stderr.strip()}")
    return done.stdout
