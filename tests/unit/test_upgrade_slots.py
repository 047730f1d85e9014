"""callmesh upgrade IMAGE.img: the image's root into the other slot, and its boot entry.

The image is a small GPT disk laid out as image/build-image lays out the real one (esp
with systemd-boot's entry and slot A's kernel, root-a, root-b, data); the box's slot
partitions are files and its ESP a folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.upgrade import ReleaseError
from appliance.upgrade.image import SlotPaths, boot_check, give_up_trial, write_slot
from appliance.upgrade.release import Checksums
from tests.release_key import ReleaseKey

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("sfdisk", "mkfs.vfat", "mcopy")),
    reason="needs fdisk, dosfstools and mtools",
)

MIB = 1024 * 1024
PART_MIB = 8
ENTRY_A = """title callmesh 0.2.0 (slot A)
sort-key callmesh
version 0.2.0
linux /callmesh-a/vmlinuz
initrd /callmesh-a/initrd.img
options root=PARTLABEL=root-a rw console=tty0 console=ttyS0,115200
"""
LAYOUT = "label: gpt\n" + "".join(
    f"start={2048 + i * PART_MIB * 2048}, size={PART_MIB * 2048}, type=L, name={name}\n"
    for i, name in enumerate(("esp", "root-a", "root-b", "data"))
)


def _sh(argv: list[str], stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True, timeout=60)


def _esp(folder: Path) -> Path:
    fat = folder / "esp.fat"
    _sh(["mkfs.vfat", "-C", str(fat), str(PART_MIB * 1024)])
    _sh(["mmd", "-i", str(fat), "::loader", "::loader/entries", "::callmesh-a"])
    files = {"loader/entries/callmesh-a.conf": ENTRY_A.encode()}
    files |= {"callmesh-a/vmlinuz": b"kernel 0.2.0", "callmesh-a/initrd.img": b"initrd 0.2.0"}
    for name, data in files.items():
        local = folder / name.replace("/", "_")
        local.write_bytes(data)
        _sh(["mcopy", "-i", str(fat), str(local), f"::{name}"])
    return fat


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, release_signer: ReleaseKey) -> Path:
    """A new release's image, with its signed SHA-256 beside it."""
    folder = tmp_path_factory.mktemp("image")
    img = folder / "new.img"
    with img.open("wb") as out:
        out.truncate((1 + 4 * PART_MIB + 1) * MIB)
    _sh(["sfdisk", "--quiet", str(img)], stdin=LAYOUT)
    with img.open("r+b") as out:
        out.seek(MIB)
        out.write(_esp(folder).read_bytes())
        out.seek(MIB + PART_MIB * MIB)
        out.write(os.urandom(PART_MIB * MIB))
    digest = hashlib.sha256(img.read_bytes()).hexdigest()
    (folder / "new.img.sha256").write_text(f"{digest}  new.img\n")
    release_signer.sign(folder / "new.img.sha256")
    return img


@pytest.fixture
def sums(trusted_keys: Path) -> Checksums:
    """The image's checksum file beside it, signed by a trusted key."""
    return Checksums(None, trusted_keys)


def box(tmp_path: Path, running: str, slot_mib: int = PART_MIB) -> SlotPaths:
    """A box booted from slot ``running``: slot partitions, ESP and command line."""
    paths = SlotPaths(
        tmp_path / "esp", tmp_path / "by-partlabel", tmp_path / "cmdline", tmp_path / "mounts"
    )
    (paths.esp / "loader" / "entries").mkdir(parents=True)
    (paths.esp / "loader" / "entries" / "callmesh-a.conf").write_text(ENTRY_A)
    paths.partitions.mkdir()
    for slot in ("a", "b"):
        with (paths.partitions / f"root-{slot}").open("wb") as part:
            part.truncate(slot_mib * MIB)
    paths.cmdline.write_text(f"BOOT_IMAGE=/vmlinuz root=PARTLABEL=root-{running} rw quiet\n")
    running_root = (paths.partitions / f"root-{running}").resolve()
    paths.mounts.write_text(f"{running_root} / ext4 rw 0 0\nproc /proc proc rw 0 0\n")
    return paths


def quiet(_phase: str, _total: int) -> Callable[[int], None]:
    return lambda _count: None


def image_part(image: Path, index: int) -> bytes:
    with image.open("rb") as source:
        source.seek(MIB + index * PART_MIB * MIB)
        return source.read(PART_MIB * MIB)


def test_an_image_goes_into_the_inactive_slot_with_a_counted_default_entry(
    image: Path, tmp_path: Path, sums: Checksums
) -> None:
    paths = box(tmp_path, running="a")

    written = write_slot(image, sums, paths, quiet)

    entries = sorted(p.name for p in (paths.esp / "loader" / "entries").iterdir())
    assert (written.slot, written.version) == ("b", "0.2.0")
    assert entries == ["callmesh-a.conf", "callmesh-b+3.conf"]
    assert (paths.partitions / "root-b").read_bytes() == image_part(image, 1)
    assert (paths.partitions / "root-a").read_bytes() == bytes(PART_MIB * MIB)
    assert (paths.esp / "callmesh-b" / "vmlinuz").read_bytes() == b"kernel 0.2.0"
    assert (paths.esp / "callmesh-b" / "initrd.img").read_bytes() == b"initrd 0.2.0"
    assert written.entry.read_text().splitlines() == [
        "title callmesh 0.2.0 (slot B)",
        "sort-key callmesh",
        "version 0.2.0",
        "linux /callmesh-b/vmlinuz",
        "initrd /callmesh-b/initrd.img",
        "options root=PARTLABEL=root-b rw console=tty0 console=ttyS0,115200",
    ]


def test_a_box_running_slot_b_gets_the_image_in_slot_a_and_loses_a_bad_old_entry(
    image: Path, tmp_path: Path, sums: Checksums
) -> None:
    paths = box(tmp_path, running="b")
    entries = paths.esp / "loader" / "entries"
    (entries / "callmesh-b.conf").write_text(ENTRY_A.replace("root-a", "root-b"))
    (entries / "callmesh-a+0-3.conf").write_text(ENTRY_A)

    written = write_slot(image, sums, paths, quiet)

    assert written.slot == "a"
    assert sorted(p.name for p in entries.iterdir()) == ["callmesh-a+3.conf", "callmesh-b.conf"]
    assert (paths.partitions / "root-a").read_bytes() == image_part(image, 1)


def test_an_image_that_does_not_match_its_checksum_touches_nothing(
    image: Path, tmp_path: Path, release_signer: ReleaseKey, trusted_keys: Path
) -> None:
    paths = box(tmp_path, running="a")
    other = tmp_path / "other.sha256"
    other.write_text(f"{'0' * 64}  new.img\n")
    release_signer.sign(other)

    with pytest.raises(ReleaseError) as refused:
        write_slot(image, Checksums(other, trusted_keys), paths, quiet)

    assert refused.value.error_id == "checksum-mismatch"
    assert (paths.partitions / "root-b").read_bytes() == bytes(PART_MIB * MIB)
    assert sorted(p.name for p in (paths.esp / "loader/entries").iterdir()) == ["callmesh-a.conf"]


def test_an_image_whose_checksum_is_signed_by_an_untrusted_key_touches_nothing(
    image: Path, tmp_path: Path, stranger_key: ReleaseKey, trusted_keys: Path
) -> None:
    paths = box(tmp_path, running="a")
    other = tmp_path / "other.sha256"
    other.write_text(image.with_name("new.img.sha256").read_text())
    stranger_key.sign(other)

    with pytest.raises(ReleaseError) as refused:
        write_slot(image, Checksums(other, trusted_keys), paths, quiet)

    assert refused.value.error_id == "signature-untrusted"
    assert (paths.partitions / "root-b").read_bytes() == bytes(PART_MIB * MIB)


def test_a_box_not_booted_from_a_slot_or_with_a_small_slot_is_refused(
    image: Path, tmp_path: Path, sums: Checksums
) -> None:
    unslotted = box(tmp_path / "one", running="a")
    unslotted.cmdline.write_text("root=/dev/sda2 rw\n")
    small = box(tmp_path / "two", running="a", slot_mib=PART_MIB // 2)

    with pytest.raises(ReleaseError) as not_slotted:
        write_slot(image, sums, unslotted, quiet)
    with pytest.raises(ReleaseError) as too_small:
        write_slot(image, sums, small, quiet)

    assert not_slotted.value.error_id == "not-a-slot"
    assert too_small.value.error_id == "slot-too-small"


def test_the_slot_the_system_runs_from_is_never_written(
    image: Path, tmp_path: Path, sums: Checksums
) -> None:
    paths = box(tmp_path, running="a")
    paths.cmdline.write_text("root=PARTLABEL=root-b rw\n")  # says b, but a is mounted at /
    paths.mounts.write_text(f"{(paths.partitions / 'root-a').resolve()} / ext4 rw 0 0\n")

    with pytest.raises(ReleaseError) as refused:
        write_slot(image, sums, paths, quiet)

    assert refused.value.error_id == "slot-in-use"
    assert (paths.partitions / "root-a").read_bytes() == bytes(PART_MIB * MIB)


def test_a_healthy_boot_blesses_its_slot_and_reports_a_slot_that_used_up_its_tries(
    tmp_path: Path,
) -> None:
    paths = box(tmp_path, running="b")
    entries = paths.esp / "loader" / "entries"
    (entries / "callmesh-b+1-2.conf").write_text(ENTRY_A.replace("root-a", "root-b"))
    (entries / "callmesh-a.conf").rename(entries / "callmesh-a+0-3.conf")

    outcome = boot_check(paths)

    assert (outcome.running, outcome.failed) == ("b", "0.2.0")
    assert outcome.blessed == entries / "callmesh-b.conf"
    assert sorted(p.name for p in entries.iterdir()) == ["callmesh-b.conf"]
    assert boot_check(paths).blessed is None
    assert give_up_trial(paths) is None  # a blessed slot is never given up


def test_an_unhealthy_slot_on_trial_is_given_up_at_once_and_reported_from_the_other_slot(
    tmp_path: Path,
) -> None:
    paths = box(tmp_path, running="b")
    entries = paths.esp / "loader" / "entries"
    (entries / "callmesh-b+2-1.conf").write_text(ENTRY_A.replace("0.2.0", "0.3.0"))

    bad = give_up_trial(paths)

    assert bad == entries / "callmesh-b+0-3.conf"
    assert sorted(p.name for p in entries.iterdir()) == ["callmesh-a.conf", bad.name]
    paths.cmdline.write_text("root=PARTLABEL=root-a rw\n")
    outcome = boot_check(paths)
    assert (outcome.running, outcome.blessed, outcome.failed) == ("a", None, "0.3.0")
    assert sorted(p.name for p in entries.iterdir()) == ["callmesh-a.conf"]
    assert give_up_trial(paths) is None  # the factory slot has no counter: it stays
