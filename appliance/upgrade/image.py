"""``callmesh upgrade IMAGE.img``: the image's root file system into the other slot.

The image (``image/build-image``) must match its published SHA-256, signed by a trusted
release key (``drivers.signature``); its ``root-a``
partition is written to this box's inactive slot partition, its kernel and initrd to
``ESP/callmesh-X/``, and a counted loader entry (``slots``) makes it the default for
the next boot. ``boot_check`` runs at every boot (``callmesh-boot-check.service``,
before ``boot-complete.target``): once the appliance is healthy it marks the running
slot good; a slot that boots but is not healthy is marked bad at once and the box
reboots into the other slot; one that never gets that far (no root, kernel panic) runs
out of tries and the other slot boots.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.upgrade import slots
from appliance.upgrade.errors import ReleaseError
from appliance.upgrade.release import Checksums
from drivers.flash import FlashError, Image
from drivers.flash.gpt import Partition, copy_partition, fat_read, partitions

Progress = Callable[[int], None]


@dataclass(frozen=True)
class SlotPaths:
    """Where this box keeps its slots: the ESP, the partitions, the kernel command line."""

    esp: Path = Path("/boot/efi")
    partitions: Path = Path("/dev/disk/by-partlabel")
    cmdline: Path = Path("/proc/cmdline")
    mounts: Path = Path("/proc/self/mounts")


@dataclass(frozen=True)
class SlotWritten:
    """An image written into a slot, booted next."""

    slot: str
    version: str
    entry: Path


def write_slot(
    image_path: Path,
    sums: Checksums,
    paths: SlotPaths,
    progress: Callable[[str, int], Progress],
) -> SlotWritten:
    """Check the image and write it into the inactive slot; the next boot tries it."""
    try:
        image = Image.open(image_path, sums.trusted, sums.sha256_file)
        image.check(progress("check", image.size))
        parts = partitions(image_path)
    except FlashError as err:
        raise ReleaseError(
            err.error_id, str(err), "fetch the image with its .sha256 and its signature again"
        ) from err
    slot = slots.other_slot(slots.running_slot(paths.cmdline.read_text()))
    root, esp = _part(parts, "root-a"), _part(parts, "esp")
    target = _target(paths.partitions / f"root-{slot}", root, paths.mounts)
    entry = _read(image_path, esp, "loader/entries/callmesh-a.conf").decode()
    version = slots.entry_version(entry)
    slots.remove_entries(paths.esp, slot)
    copy_partition(image_path, root, target, progress("write", root.size))
    boot = paths.esp / f"callmesh-{slot}"
    boot.mkdir(exist_ok=True)
    for name in ("vmlinuz", "initrd.img"):
        _write_synced(boot / name, _read(image_path, esp, f"callmesh-a/{name}"))
    text = slots.entry_text(version, slot, slots.slot_options(entry, slot))
    return SlotWritten(slot, version, slots.write_entry(paths.esp, slot, text))


def _part(parts: dict[str, Partition], name: str) -> Partition:
    if name not in parts:
        raise ReleaseError(
            "image-incomplete",
            f"the image has no {name} partition",
            "use an image from build-image",
        )
    return parts[name]


def _target(device: Path, root: Partition, mounts: Path) -> Path:
    mounted = {line.split()[0] for line in mounts.read_text().splitlines() if line.strip()}
    if str(device.resolve()) in mounted or str(device) in mounted:
        raise ReleaseError(
            "slot-in-use",
            f"{device} is mounted: it holds the running system or is in use",
            "reboot, then run the upgrade again",
        )
    try:
        with device.open("rb") as found:
            size = found.seek(0, 2)
    except OSError as err:
        raise ReleaseError(
            "no-slot-partition",
            f"cannot open {device}: {err.strerror}",
            "this box was not flashed with an A/B image; upgrade with the packages",
        ) from err
    if size < root.size:
        raise ReleaseError(
            "slot-too-small",
            f"{device} holds {size} bytes, the image's root file system {root.size}",
            "reflash the box with the new image (callmesh flash)",
        )
    return device


def _read(image: Path, esp: Partition, name: str) -> bytes:
    try:
        return fat_read(image, esp, name)
    except FlashError as err:
        raise ReleaseError(
            err.error_id, str(err), "use an image built by image/build-image"
        ) from err


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


@dataclass(frozen=True)
class BootOutcome:
    """What the boot check found: the slot it blessed, and a slot that failed its tries."""

    running: str
    blessed: Path | None
    failed: str | None  # the release of the other slot, when it used up its tries


def boot_check(paths: SlotPaths) -> BootOutcome:
    """Mark the running slot good (called once healthy); drop the other slot's bad entry."""
    running = slots.running_slot(paths.cmdline.read_text())
    blessed = slots.bless(paths.esp, running)
    bad = slots.bad_entry(paths.esp, slots.other_slot(running))
    failed = None
    if bad is not None:
        failed = slots.entry_version_of(bad)
        bad.unlink()
    return BootOutcome(running, blessed, failed)


def give_up_trial(paths: SlotPaths) -> Path | None:
    """Mark the running slot bad if it is on trial (counted entry): the other slot boots next.

    None when the running slot is not on trial (already blessed, or the factory slot).
    """
    running = slots.running_slot(paths.cmdline.read_text())
    return slots.mark_bad(paths.esp, running)
