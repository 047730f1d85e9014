"""`callmesh flash` against real loop devices: progress, read-back verification, refusals."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.flash import Image, Target, VerifyError, verify, write
from tests.procs import callmesh

MIB = 1024 * 1024


def losetup(backing: Path) -> str:
    return subprocess.run(
        ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB loop device, detached afterwards."""
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.fail("flash tests need root and losetup (util-linux) for loop devices")
    backing = tmp_path / "disk.raw"
    with backing.open("wb") as handle:
        handle.truncate(32 * MIB)
    device = Path(losetup(backing))
    yield device
    subprocess.run(["losetup", "--detach", str(device)], check=False)


def make_image(path: Path, size: int) -> Path:
    data = os.urandom(size)
    path.write_bytes(data)
    path.with_name(path.name + ".sha256").write_text(
        f"{hashlib.sha256(data).hexdigest()}  {path.name}\n"
    )
    return path


def head(device: Path, size: int) -> bytes:
    with device.open("rb") as handle:
        return handle.read(size)


def test_an_image_is_written_with_progress_and_reads_back_identical(
    disk: Path, tmp_path: Path
) -> None:
    image = make_image(tmp_path / "callmesh.img", 20 * MIB + 4096 + 17)
    result = callmesh("flash", str(image), str(disk), "--yes")
    assert result.returncode == 0, result.stderr
    assert "read back and verified" in result.stdout
    for phase in ("check", "write", "verify"):
        assert f"{phase:<6} [" in result.stderr
        assert "100%" in result.stderr
    assert head(disk, image.stat().st_size) == image.read_bytes()


def test_a_byte_changed_on_the_device_after_writing_is_found_by_verify(
    disk: Path, tmp_path: Path
) -> None:
    image = Image.open(make_image(tmp_path / "callmesh.img", 8 * MIB))
    target = Target.open(disk)
    write(image, target)
    offset = 5 * MIB + 123
    with disk.open("r+b") as handle:
        handle.seek(offset)
        original = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([original[0] ^ 0xFF]))
    with pytest.raises(VerifyError) as caught:
        verify(image, target)
    assert caught.value.error_id == "verify-mismatch"
    assert f"at byte {offset}" in str(caught.value)


def test_an_image_that_does_not_match_its_checksum_never_touches_the_device(
    disk: Path, tmp_path: Path
) -> None:
    image = make_image(tmp_path / "callmesh.img", 4 * MIB)
    damaged = bytearray(image.read_bytes())
    damaged[1000] ^= 0x01
    image.write_bytes(damaged)
    result = callmesh("flash", str(image), str(disk), "--yes")
    assert result.returncode == 1
    assert "checksum-mismatch" in result.stderr
    assert head(disk, 4 * MIB) == bytes(4 * MIB)


def test_an_image_without_a_checksum_is_refused(disk: Path, tmp_path: Path) -> None:
    image = make_image(tmp_path / "callmesh.img", MIB)
    image.with_name("callmesh.img.sha256").unlink()
    result = callmesh("flash", str(image), str(disk), "--yes")
    assert result.returncode == 1
    assert "checksum-missing" in result.stderr


def test_a_disk_smaller_than_the_image_is_refused(disk: Path, tmp_path: Path) -> None:
    image = make_image(tmp_path / "callmesh.img", 33 * MIB)
    result = callmesh("flash", str(image), str(disk), "--yes")
    assert result.returncode == 1
    assert "device-too-small" in result.stderr


def test_a_mounted_disk_is_refused(disk: Path, tmp_path: Path) -> None:
    subprocess.run(["mkfs.ext4", "-q", str(disk)], check=True)
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    subprocess.run(["mount", str(disk), str(mount_point)], check=True)
    try:
        image = make_image(tmp_path / "callmesh.img", MIB)
        result = callmesh("flash", str(image), str(disk), "--yes")
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
    assert result.returncode == 1
    assert "device-mounted" in result.stderr
    assert str(mount_point) in result.stderr


def test_the_disk_holding_the_running_system_is_refused(tmp_path: Path) -> None:
    root = os.stat("/").st_dev
    node = Path(f"/sys/dev/block/{os.major(root)}:{os.minor(root)}").resolve()
    if not node.exists():
        pytest.skip("/ is not on a block device here (overlay or tmpfs root)")
    disk = node.parent if (node / "partition").exists() else node
    image = make_image(tmp_path / "callmesh.img", MIB)
    result = callmesh("flash", str(image), f"/dev/{disk.name}", "--yes")
    assert result.returncode == 1
    assert "system-disk" in result.stderr


def test_a_file_is_not_a_disk(tmp_path: Path) -> None:
    image = make_image(tmp_path / "callmesh.img", MIB)
    result = callmesh("flash", str(image), str(tmp_path / "callmesh.img"), "--yes")
    assert result.returncode == 1
    assert "not-a-block-device" in result.stderr


def test_without_a_terminal_or_yes_nothing_is_written(disk: Path, tmp_path: Path) -> None:
    image = make_image(tmp_path / "callmesh.img", MIB)
    result = callmesh("flash", str(image), str(disk))
    assert result.returncode == 1
    assert "pass --yes" in result.stderr
    assert head(disk, MIB) == bytes(MIB)
