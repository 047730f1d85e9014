"""The appliance disk image: built from the repository, it holds no secret, and it boots
in qemu (UEFI, systemd-boot, slot A) to a healthy appliance with its own identity.

The image is built once per module by ``image/build-image`` (or taken from
``CALLMESH_IMAGE``); the boot test reads the technician token the first boot shows on the
serial console and uses it on the appliance's API through a loopback forward.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.image.vm import OVMF_CODE, booted
from tests.procs import ROOT, free_port

pytestmark = [
    pytest.mark.timeout(2400),
    pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap and loop devices need root"),
    pytest.mark.skipif(
        not all(
            shutil.which(tool)
            for tool in ("mmdebstrap", "systemd-repart", "mcopy", "qemu-system-x86_64")
        )
        or not OVMF_CODE.exists(),
        reason="needs mmdebstrap, mtools, qemu-system-x86 and ovmf (./run test installs them)",
    ),
]

FIRST_BOOT_LINE = r"callmesh: site (box-[0-9a-f]{12}), technician token ([0-9a-f]{48})"
BOOT_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def image(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    given = os.environ.get("CALLMESH_IMAGE")
    if given:
        yield Path(given)
        return
    debs: list[Path] = request.getfixturevalue("callmesh_debs")
    out = tmp_path_factory.mktemp("image") / "callmesh.img"
    started = time.monotonic()
    built = subprocess.run(
        [str(ROOT / "image" / "build-image"), "--debs", str(debs[0].parent), str(out)],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert built.returncode == 0, f"image/build-image failed:\n{built.stderr[-4000:]}"
    print(f"\nimage/build-image --debs: {time.monotonic() - started:.0f} s")
    try:
        yield out
    finally:
        out.unlink()


@dataclass(frozen=True)
class Partition:
    """Where one partition lies in the disk image, in bytes."""

    disk: Path
    offset: int
    size: int


def partitions(disk: Path) -> dict[str, Partition]:
    """The partitions of ``disk`` by GPT label, from its partition table (sfdisk)."""
    table = json.loads(_run("sfdisk", "--json", str(disk)))["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    return {
        part["name"]: Partition(disk, part["start"] * sector, part["size"] * sector)
        for part in table["partitions"]
        if "name" in part
    }


@contextlib.contextmanager
def mounted(part: Partition, mountpoint: Path) -> Iterator[Path]:
    """An ext4 partition mounted read-only through a loop device at its offset."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    options = f"ro,loop,offset={part.offset},sizelimit={part.size}"
    _run("mount", "-t", "ext4", "-o", options, str(part.disk), str(mountpoint))
    try:
        yield mountpoint
    finally:
        _run("umount", str(mountpoint))


def fat_read(part: Partition, path: str) -> str:
    """A file of a FAT partition, read with mtools (no mount, no vfat module needed)."""
    return _run("mtype", "-i", f"{part.disk}@@{part.offset}", f"::{path}")


def fat_list(part: Partition, folder: str) -> list[str]:
    listed = _run("mdir", "-b", "-i", f"{part.disk}@@{part.offset}", f"::{folder}")
    return sorted(line.rstrip("/").rsplit("/", 1)[-1] for line in listed.split())


def _run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


def test_the_image_holds_no_secret_and_boots_slot_a(image: Path, tmp_path: Path) -> None:
    parts = partitions(image)
    assert set(parts) == {"esp", "root-a", "root-b", "data"}
    with mounted(parts["root-a"], tmp_path / "root") as root:
        assert (root / "etc/machine-id").read_text() == ""  # systemd: first boot, new id
        assert not (root / "etc/callmesh/conf.d/10-firstboot.yaml").exists()
        assert not list((root / "etc").glob("ssh/ssh_host_*"))
        factory = yaml.safe_load((root / "etc/callmesh/appliance.yaml").read_text())
        assert "api" not in factory
        assert "sip" not in factory
        assert "peering" not in factory["pbx"]
        assert (root / "opt/callmesh/venv/bin/callmesh").exists()
        wants = root / "etc/systemd/system/multi-user.target.wants"
        assert (wants / "callmesh-boot-check.service").is_symlink()
        assert (root / "usr/sbin/sfdisk").exists()
        assert (root / "usr/bin/mcopy").exists()
        esp = parts["esp"]
        assert fat_list(esp, "/loader/entries") == ["callmesh-a.conf"]
        entry = fat_read(esp, "/loader/entries/callmesh-a.conf")
        assert "root=PARTLABEL=root-a" in entry
        assert "\nsort-key callmesh\n" in entry
        assert fat_list(esp, "/EFI/BOOT") == ["BOOTX64.EFI"]


def test_the_image_boots_to_a_healthy_appliance_with_its_own_token(
    image: Path, tmp_path: Path
) -> None:
    port = free_port()
    started = time.monotonic()
    with booted(image, tmp_path, port) as vm:
        shown = vm.wait_for_console(FIRST_BOOT_LINE, BOOT_TIMEOUT_S)
        site, token = shown.group(1), shown.group(2)
        health = _wait_healthy(port, BOOT_TIMEOUT_S - (time.monotonic() - started))
        booted_s = time.monotonic() - started
        print(f"\nimage boot to healthy appliance: {booted_s:.0f} s")
        assert health["status"] == "ok", health
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/v1/calls", timeout=10).status_code == 401
        calls = httpx.get(
            f"{base}/api/v1/calls", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert calls.status_code == 200, calls.text
        assert site in vm.console()


def _wait_healthy(port: int, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            last = response.text
            if response.status_code == 200:
                body: dict[str, object] = response.json()
                return body
        time.sleep(2)
    raise AssertionError(f"/healthz never answered 200 within {timeout:.0f}s: {last}")
