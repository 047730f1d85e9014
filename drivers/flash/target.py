"""The block device an image goes to, and why it may not be written.

A device is refused when it is not a whole-disk block device, when it or one of its
partitions is mounted, used as swap or held by another device (LVM, RAID, dm-crypt), when
it holds the running system, or when it is smaller than the image. The facts come from
sysfs and ``/proc``; both roots can be pointed elsewhere for tests.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from drivers.flash.errors import TargetError

SYSTEM_MOUNTS = ("/", "/boot", "/boot/efi", "/usr", "/var")


@dataclass(frozen=True)
class Target:
    """A whole-disk block device that may be overwritten."""

    path: Path
    name: str
    size: int
    model: str

    @classmethod
    def open(cls, path: Path, sys_root: Path = Path("/sys"), proc: Path = Path("/proc")) -> Target:
        """Check ``path`` and describe it; raise ``TargetError`` naming why it is refused."""
        disk = _disk_dir(path, sys_root)
        ids = _device_ids(disk)
        _refuse_system_disk(path, disk, ids, sys_root, proc)
        _refuse_in_use(path, disk, ids, proc)
        size = int((disk / "size").read_text()) * 512
        model = _read(disk / "device" / "model") or _read(disk / "loop" / "backing_file")
        return cls(path, disk.name, size, model or "unknown model")

    def require_room_for(self, image_size: int) -> None:
        """Raise ``device-too-small`` unless the image fits."""
        if image_size > self.size:
            raise TargetError(
                "device-too-small",
                f"{self.path} holds {self.size} bytes but the image needs {image_size}: "
                "use a larger disk",
            )


def _disk_dir(path: Path, sys_root: Path) -> Path:
    try:
        info = os.stat(path)
    except OSError as err:
        raise TargetError("device-missing", f"cannot open {path}: {err.strerror}") from err
    if not stat.S_ISBLK(info.st_mode):
        raise TargetError(
            "not-a-block-device", f"{path} is not a block device: name a disk such as /dev/sdb"
        )
    found = (sys_root / "dev" / "block" / _dev_id(info.st_rdev)).resolve()
    if (found / "partition").exists():
        raise TargetError(
            "not-a-whole-disk",
            f"{path} is a partition of /dev/{found.parent.name}: name the whole disk",
        )
    return found


def _device_ids(disk: Path) -> set[str]:
    """``major:minor`` of the disk and each of its partitions."""
    ids = {(disk / "dev").read_text().strip()}
    for child in disk.iterdir():
        if (child / "partition").exists():
            ids.add((child / "dev").read_text().strip())
    return ids


def _refuse_system_disk(path: Path, disk: Path, ids: set[str], sys_root: Path, proc: Path) -> None:
    for mount_id, point in _mounts(proc):
        if point in SYSTEM_MOUNTS and (mount_id in ids or _parent_id(mount_id, sys_root) in ids):
            raise TargetError(
                "system-disk",
                f"{path} holds the running system ({point} is on it): name another disk",
            )


def _refuse_in_use(path: Path, disk: Path, ids: set[str], proc: Path) -> None:
    mounted = sorted(point for mount_id, point in _mounts(proc) if mount_id in ids)
    if mounted:
        raise TargetError(
            "device-mounted",
            f"{path} is mounted at {', '.join(mounted)}: unmount it first (umount)",
        )
    if any(_swap_ids(proc) & ids):
        raise TargetError("device-in-use", f"{path} is used as swap: swapoff it first")
    holders = [h.name for part in (disk, *disk.iterdir()) if (h_dir := part / "holders").is_dir()
               for h in h_dir.iterdir()]  # fmt: skip
    if holders:
        raise TargetError(
            "device-in-use",
            f"{path} is held by {', '.join(sorted(holders))} (LVM, RAID or dm-crypt): "
            "release it first",
        )


def _mounts(proc: Path) -> list[tuple[str, str]]:
    """(major:minor, mount point) of every mount this process sees."""
    found = []
    for line in (proc / "self" / "mountinfo").read_text().splitlines():
        fields = line.split()
        found.append((fields[2], fields[4].replace("\\040", " ")))
    return found


def _swap_ids(proc: Path) -> set[str]:
    ids = set()
    for line in (proc / "swaps").read_text().splitlines()[1:]:
        try:
            info = os.stat(line.split()[0])
        except (OSError, IndexError):
            continue
        if stat.S_ISBLK(info.st_mode):
            ids.add(_dev_id(info.st_rdev))
    return ids


def _parent_id(mount_id: str, sys_root: Path) -> str | None:
    """The whole disk's ``major:minor`` for a partition's, else None."""
    node = (sys_root / "dev" / "block" / mount_id).resolve()
    if not (node / "partition").exists():
        return None
    return (node.parent / "dev").read_text().strip()


def _dev_id(rdev: int) -> str:
    return f"{os.major(rdev)}:{os.minor(rdev)}"


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
