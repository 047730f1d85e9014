"""A/B root slots and their systemd-boot entries, on the mounted EFI system partition.

Slot X boots ``/callmesh-X/vmlinuz`` with ``root=PARTLABEL=root-X``, from the entry
``loader/entries/callmesh-X.conf``. A freshly written slot's entry carries a boot
counter (``callmesh-X+3.conf``): systemd-boot counts each try down in the file name
(``+2-1``, ...), and one left at ``+0`` is bad and sorted last, so the other slot boots.
Entries sort by ``sort-key`` and then ``version``, newest first: ``loader.conf``'s
``default callmesh-*`` picks the newest release that is not bad. ``bless`` renames the
running slot's counted entry to the plain name, as systemd-bless-boot would, once the
box is healthy; ``mark_bad`` spends all its tries when the box booted but is not healthy.

Order of writing a slot, so that a power cut at any step boots the other slot: its
entry is removed first, the root file system and kernel are written, and the new entry
is written last (to a temporary name, then renamed).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from appliance.upgrade.errors import ReleaseError

SLOTS = ("a", "b")
TRIES = 3
SORT_KEY = "callmesh"
_ROOT = re.compile(r"(?:^|\s)root=PARTLABEL=root-([ab])(?:\s|$)")
_SPENT = re.compile(r"\+0(?:-\d+)?\.conf$")
_COUNTED = re.compile(r"^callmesh-([ab])(?:\+\d+(?:-\d+)?)?\.conf$")


def running_slot(cmdline: str) -> str:
    """The slot the kernel was booted from (``root=PARTLABEL=root-X`` on its command line)."""
    found = _ROOT.search(cmdline)
    if found is None:
        raise ReleaseError(
            "not-a-slot",
            "this system was not booted from an A/B image slot (no root=PARTLABEL=root-a/b)",
            "upgrade it with the callmesh packages instead",
        )
    return found.group(1)


def other_slot(slot: str) -> str:
    """The slot that is not ``slot``."""
    return SLOTS[1 - SLOTS.index(slot)]


def entries(esp: Path, slot: str) -> list[Path]:
    """The loader entries of ``slot``, with or without a boot counter."""
    folder = esp / "loader" / "entries"
    found = folder.glob(f"callmesh-{slot}*.conf") if folder.is_dir() else []
    return sorted(p for p in found if (m := _COUNTED.match(p.name)) and m.group(1) == slot)


def remove_entries(esp: Path, slot: str) -> None:
    """Drop ``slot``'s entries: it is about to be overwritten."""
    for entry in entries(esp, slot):
        entry.unlink()
    _sync(esp / "loader" / "entries")


def entry_text(version: str, slot: str, options: str) -> str:
    """The loader entry that boots ``slot`` (``options`` already name its root)."""
    return (
        f"title callmesh {version} (slot {slot.upper()})\n"
        f"sort-key {SORT_KEY}\nversion {version}\n"
        f"linux /callmesh-{slot}/vmlinuz\ninitrd /callmesh-{slot}/initrd.img\n"
        f"options {options}\n"
    )


def slot_options(image_entry: str, slot: str) -> str:
    """The kernel options of the image's entry, with the root partition of ``slot``."""
    found = re.search(r"^options\s+(.+)$", image_entry, re.MULTILINE)
    if found is None or not _ROOT.search(found.group(1)):
        raise ReleaseError(
            "image-incomplete",
            "the image's loader entry has no options with root=PARTLABEL=root-a",
            "use an image built by image/build-image",
        )
    return _ROOT.sub(f" root=PARTLABEL=root-{slot} ", found.group(1)).strip()


def entry_version(image_entry: str) -> str:
    """The ``version`` line of a loader entry."""
    found = re.search(r"^version\s+(\S+)$", image_entry, re.MULTILINE)
    if found is None:
        raise ReleaseError(
            "image-incomplete",
            "the image's loader entry has no version",
            "use an image built by image/build-image",
        )
    return found.group(1)


def write_entry(esp: Path, slot: str, text: str, tries: int = TRIES) -> Path:
    """``slot``'s entry with ``tries`` boot attempts left, written atomically."""
    folder = esp / "loader" / "entries"
    entry = folder / f"callmesh-{slot}+{tries}.conf"
    part = folder / f".callmesh-{slot}.conf.new"
    part.write_text(text)
    _fsync(part)
    part.rename(entry)
    _sync(folder)
    return entry


def bless(esp: Path, slot: str) -> Path | None:
    """Mark ``slot``'s counted entry good (plain name); None when it has no counter."""
    plain = esp / "loader" / "entries" / f"callmesh-{slot}.conf"
    counted = [e for e in entries(esp, slot) if e != plain]
    if not counted:
        return None
    counted[0].rename(plain)
    _sync(plain.parent)
    return plain


def mark_bad(esp: Path, slot: str) -> Path | None:
    """Spend all of ``slot``'s tries (``+0-N``); None when its entry has no counter.

    A slot that booted but failed its health check would fail the same way on its
    remaining tries, so it is given up at once and the other slot boots next.
    """
    plain = esp / "loader" / "entries" / f"callmesh-{slot}.conf"
    counted = [e for e in entries(esp, slot) if e != plain]
    if not counted:
        return None
    bad = counted[0].with_name(f"callmesh-{slot}+0-{TRIES}.conf")
    counted[0].rename(bad)
    _sync(bad.parent)
    return bad


def bad_entry(esp: Path, slot: str) -> Path | None:
    """``slot``'s entry when it has no tries left (``+0-N``): that slot failed to boot."""
    return next((e for e in entries(esp, slot) if _SPENT.search(e.name)), None)


def entry_version_of(path: Path) -> str:
    """The release an entry boots ("?" when the entry does not say)."""
    try:
        return entry_version(path.read_text())
    except (OSError, ReleaseError):
        return "?"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync(folder: Path) -> None:
    """Flush a directory's entries (a vfat ESP gets them on disk with the fsync)."""
    if folder.is_dir():
        _fsync(folder)
