"""What a technician brings to a booted appliance image: an SSH key and a USB stick.

The key is made for the test session (its public half goes into the image with
``build-image --technician-keys``); the stick is an ext4 file system holding release
images with their signed checksums, attached to the guest read-only as a second disk.
A broken release is the session's image with a factory config the appliance refuses
(a slot that boots but never becomes healthy), checksummed and signed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.release_key import ReleaseKey

STICK_LABEL = "stick"
BROKEN_CONFIG = ("profile: branch\n", "profile: brnach\n")  # not a profile: refused at start


@dataclass(frozen=True)
class Technician:
    """The technician's SSH key pair (the private half never leaves the host)."""

    private: Path

    @property
    def public(self) -> Path:
        return self.private.with_name(self.private.name + ".pub")


def technician_key(folder: Path) -> Technician:
    """A new ed25519 key pair without a passphrase."""
    private = folder / "technician"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "technician", "-f", str(private)],
        check=True,
        timeout=60,
    )
    return Technician(private)


def ssh(who: Technician, port: int, command: str, timeout: float) -> tuple[int, str]:
    """Run ``command`` as root on the guest: exit code and output (stdout and stderr).

    Each slot makes its own host keys at its first boot, so the host key is not pinned.
    """
    argv = [
        "ssh", "-i", str(who.private), "-p", str(port),
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "root@127.0.0.1", command,
    ]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        return 124, f"timed out after {timeout:.0f}s: {err.output!r}"
    return done.returncode, done.stdout + done.stderr


def wait_ssh(who: Technician, port: int, timeout: float) -> None:
    """Wait until the guest's SSH server lets the technician in."""
    deadline = time.monotonic() + timeout
    said = "never tried"
    while time.monotonic() < deadline:
        code, said = ssh(who, port, "true", timeout=60)
        if code == 0:
            return
        time.sleep(3)
    raise AssertionError(f"ssh never let the technician in within {timeout:.0f}s: {said}")


def broken_release(image: Path, root_offset: int, signer: ReleaseKey, folder: Path) -> Path:
    """A copy of ``image`` whose root file system ships a config the appliance refuses."""
    broken = folder / "broken.img"
    subprocess.run(["cp", "--sparse=always", str(image), str(broken)], check=True, timeout=600)
    with _mounted_rw(broken, root_offset, folder / "root") as root:
        config = root / "etc/callmesh/appliance.yaml"
        text = config.read_text()
        assert BROKEN_CONFIG[0] in text, text
        config.write_text(text.replace(*BROKEN_CONFIG))
    _sign(broken, signer)
    return broken


def stick(images: list[Path], folder: Path) -> Path:
    """A USB stick (ext4, sparse) holding ``images`` with their checksums and signatures."""
    content = folder / "stick-content"
    content.mkdir()
    size = 0
    for image in images:
        for path in (image, *image.parent.glob(f"{image.name}.sha256*")):
            subprocess.run(
                ["cp", "--sparse=always", str(path), str(content / path.name)],
                check=True,
                timeout=600,
            )
        size += image.stat().st_size
    disk = folder / "stick.img"
    with disk.open("wb") as out:
        out.truncate(size + 1024**3)
    subprocess.run(
        ["mkfs.ext4", "-q", "-L", STICK_LABEL, "-d", str(content), str(disk)],
        check=True,
        timeout=900,
    )
    shutil.rmtree(content)
    return disk


def _sign(image: Path, signer: ReleaseKey) -> None:
    digest = hashlib.sha256()
    with image.open("rb") as source:
        while chunk := source.read(8 * 1024 * 1024):
            digest.update(chunk)
    sums = image.with_name(image.name + ".sha256")
    sums.write_text(f"{digest.hexdigest()}  {image.name}\n")
    signer.sign(sums)


@contextlib.contextmanager
def _mounted_rw(disk: Path, offset: int, mountpoint: Path) -> Iterator[Path]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    options = f"loop,offset={offset}"
    subprocess.run(
        ["mount", "-t", "ext4", "-o", options, str(disk), str(mountpoint)], check=True, timeout=60
    )
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True, timeout=60)
