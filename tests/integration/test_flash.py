"""`callmesh flash` against real loop devices: progress, read-back verification, refusals.

Images are published as a release publishes them: ``IMAGE.sha256`` signed by the session's
release key (``IMAGE.sha256.asc``), and ``callmesh flash`` trusts that key
(``--trusted-keys``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.flash import Image, Target, VerifyError, verify, write
from tests.procs import callmesh
from tests.release_key import ReleaseKey

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


@pytest.fixture
def make_image(release_signer: ReleaseKey) -> Callable[[Path, int], Path]:
    """Writes a random image with its signed SHA-256 beside it."""

    def made(path: Path, size: int) -> Path:
        data = os.urandom(size)
        path.write_bytes(data)
        sums = path.with_name(path.name + ".sha256")
        sums.write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
        release_signer.sign(sums)
        return path

    return made


@pytest.fixture
def flash(trusted_keys: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``callmesh flash`` trusting the session's release key."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return callmesh("flash", *args, "--trusted-keys", str(trusted_keys))

    return run


def head(device: Path, size: int) -> bytes:
    with device.open("rb") as handle:
        return handle.read(size)


def test_an_image_is_written_with_progress_and_reads_back_identical(
    disk: Path,
    tmp_path: Path,
    make_image: Callable[[Path, int], Path],
    flash: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    image = make_image(tmp_path / "callmesh.img", 20 * MIB + 4096 + 17)
    result = flash(str(image), str(disk), "--yes")
    assert result.returncode == 0, result.stderr
    assert "read back and verified" in result.stdout
    for phase in ("check", "write", "verify"):
        assert f"{phase:<6} [" in result.stderr
        assert "100%" in result.stderr
    assert head(disk, image.stat().st_size) == image.read_bytes()


def test_a_byte_changed_on_the_device_after_writing_is_found_by_verify(
    disk: Path, tmp_path: Path, make_image: Callable[[Path, int], Path], trusted_keys: Path
) -> None:
    image = Image.open(make_image(tmp_path / "callmesh.img", 8 * MIB), trusted_keys)
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
    disk: Path,
    tmp_path: Path,
    make_image: Callable[[Path, int], Path],
    flash: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    image = make_image(tmp_path / "callmesh.img", 4 * MIB)
    damaged = bytearray(image.read_bytes())
    damaged[1000] ^= 0x01
    image.write_bytes(damaged)
    result = flash(str(image), str(disk), "--yes")
    assert result.returncode == 1
    assert "checksum-mismatch" in result.stderr
    assert head(disk, 4 * MIB) == bytes(4 * MIB)


def test_an_image_without_a_checksum_is_refused(
    disk: Path,
    tmp_path: Path,
    make_image: Callable[[Path, int], Path],
    flash: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    image = make_image(tmp_path / "callmesh.img", MIB)
    image.with_name("callmesh.img.sha256").unlink()
    result = flash(str(image), str(disk), "--yes")
    assert result.returncode == 1
    assert "checksum-missing" in result.stderr


def test_a_disk_smaller_than_the_image_is_refused(
    disk: Path,
    tmp_path: Path,
    make_image: Callable[[Path, int], Path],
    flash: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    image = make_image(tmp_path / "callmesh.img", 33 * MIB)
    result = flash(str(image), str(disk), "--yes")
    assert result.returncode == 1
    assert "device-too-small" in result.stderr


def test_a_mounted_disk_is_refused(
    disk: Path,
    tmp_path: Path,
    make_image: Callable[[Path, int], Path],
    flash: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    subprocess.run(["mkfs.ext4", "-q", str(disk)], check=True)
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    subprocess.run(["mount", str(disk), str(mount_point)], check=True)
    try:
        image = make_image(tmp_path / "callmesh.img", MIB)
        result = flash(str(image), str(disk), "--yes")
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
    assert result.returncode == 1
    assert "device-mounted" in result.stderr
    assert str(mount_point) in result.stderr


def test_the_disk_holding_the_running_system_is_refused(
    tmp_path: Path,
    make_image: Callable[[Path, int], Path],
    flash: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    root = os.stat("/").st_dev
    node = Path(f"/sys/dev/block/{os.major(root)}:{os.minor(root)}").resolve()
    if not node.exists():
        pytest.skip("/ is not on a block device here (overlay or tmpfs root)")
    disk = node.parent if (node / "partition").exists() else node
    image = make_image(tmp_path / "callmesh.img", MIB)
    result = flash(str(image), f"/dev/{disk.name}", "--yes")
    assert result.returncode == 1
    assert "system-disk" in result.stderr


def test_a_file_is_not_a_disk(
    tmp_path: Path,
    make_image: Callable[[Path, int], Path],
    flash: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    image = make_image(tmp_path / "callmesh.img", MIB)
    result = flash(str(image), str(tmp_path / "callmesh.img"), "--yes")
    assert result.returncode == 1
    assert "not-a-block-device" in result.stderr


def test_without_a_terminal_or_yes_nothing_is_written(
    disk: Path,
    tmp_path: Path,
    make_image: Callable[[Path, int], Path],
    flash: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    image = make_image(tmp_path / "callmesh.img", MIB)
    result = flash(str(image), str(disk))
    assert result.returncode == 1
    assert "pass --yes" in result.stderr
    assert head(disk, MIB) == bytes(MIB)


def refused_untouched(
    flash: Callable[..., subprocess.CompletedProcess[str]], image: Path, disk: Path, error_id: str
) -> subprocess.CompletedProcess[str]:
    """Flash ``image``; it must be refused with ``error_id`` and leave the disk as it was."""
    result = flash(str(image), str(disk), "--yes")
    assert result.returncode == 1
    assert error_id in result.stderr
    assert head(disk, MIB) == bytes(MIB)
    return result


def test_an_image_whose_checksum_was_changed_after_signing_never_touches_the_device(
    disk: Path,
    tmp_path: Path,
    make_image: Callable[[Path, int], Path],
    flash: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    image = make_image(tmp_path / "callmesh.img", MIB)
    sums = image.with_name("callmesh.img.sha256")
    image.write_bytes(os.urandom(MIB))
    sums.write_text(f"{hashlib.sha256(image.read_bytes()).hexdigest()}  callmesh.img\n")
    refused_untouched(flash, image, disk, "signature-bad")


def test_an_image_signed_by_a_key_not_trusted_here_never_touches_the_device(
    disk: Path,
    tmp_path: Path,
    stranger_key: ReleaseKey,
    make_image: Callable[[Path, int], Path],
    flash: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    image = make_image(tmp_path / "callmesh.img", MIB)
    stranger_key.sign(image.with_name("callmesh.img.sha256"))
    refused_untouched(flash, image, disk, "signature-untrusted")


def test_an_image_without_a_signature_never_touches_the_device(
    disk: Path,
    tmp_path: Path,
    make_image: Callable[[Path, int], Path],
    flash: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    image = make_image(tmp_path / "callmesh.img", MIB)
    image.with_name("callmesh.img.sha256.asc").unlink()
    result = refused_untouched(flash, image, disk, "signature-missing")
    assert "callmesh.img.sha256.asc" in result.stderr
