"""`callmesh flash IMAGE DEVICE`: write a firmware image to a disk, with progress, and verify it.

Order of work: the image's published SHA-256 must be signed by a trusted release key and
the image must match it before the device is touched; the device is refused if it is
mounted, in use, holds this system or is too small; after writing, the device is read
back and compared byte for byte.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from drivers.signature import DEFAULT_TRUSTED

MIB = 1024 * 1024


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `callmesh flash`."""
    parser = sub.add_parser(
        "flash",
        help="write a firmware image to a disk and verify it",
        description="Write IMAGE (a raw disk image) to DEVICE (a whole disk such as "
        "/dev/sdb), showing progress, then read the disk back and compare. The image must "
        "match the SHA-256 published beside it (IMAGE.sha256) or given with --checksum, "
        "and that file must be signed (FILE.asc or FILE.sig beside it) by a release key "
        "trusted here (--trusted-keys). "
        "Mounted disks, disks in use and the disk holding the running system are refused. "
        "Exit codes: 0 written and verified, 1 refused or failed, 2 usage.",
    )
    parser.add_argument("image", type=Path, help="raw disk image")
    parser.add_argument("device", type=Path, help="whole-disk block device to overwrite")
    parser.add_argument(
        "--checksum", type=Path, metavar="FILE", help="sha256sum file (default IMAGE.sha256)"
    )
    parser.add_argument(
        "--trusted-keys", type=Path, default=DEFAULT_TRUSTED, metavar="DIR",
        help=f"directory of trusted release keys, *.gpg (default {DEFAULT_TRUSTED})",
    )  # fmt: skip
    parser.add_argument("--yes", action="store_true", help="do not ask before erasing DEVICE")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip reading the device back after writing"
    )
    parser.set_defaults(func=_flash)


def _flash(args: argparse.Namespace) -> int:
    from drivers.flash import FlashError, Image, Target, verify, write

    try:
        image = Image.open(args.image, args.trusted_keys, args.checksum)
        target = Target.open(args.device)
        target.require_room_for(image.size)
        if not args.yes and not _confirmed(target.path, target.size, target.model):
            print("callmesh flash: not confirmed; nothing written", file=sys.stderr)
            return 1
        image.check(ProgressBar("check", image.size))
        started = time.monotonic()
        write(image, target, ProgressBar("write", image.size))
        seconds = time.monotonic() - started
        if not args.no_verify:
            verify(image, target, ProgressBar("verify", image.size))
    except FlashError as err:
        print(f"callmesh flash: {err.error_id}: {err}", file=sys.stderr)
        return 1
    rate = image.size / MIB / max(seconds, 1e-6)
    checked = "" if args.no_verify else ", read back and verified"
    print(f"{args.device}: {image.size / MIB:.1f} MiB written in {seconds:.1f} s "
          f"({rate:.1f} MiB/s){checked}")  # fmt: skip
    return 0


def _confirmed(device: Path, size: int, model: str) -> bool:
    if not sys.stdin.isatty():
        print("callmesh flash: not a terminal; pass --yes to erase without asking",
              file=sys.stderr)  # fmt: skip
        return False
    print(f"This erases everything on {device} ({size / 1e9:.1f} GB, {model}).", file=sys.stderr)
    return input("Type 'yes' to continue: ").strip() == "yes"


class ProgressBar:
    """Bytes done, rate and time left for one phase, redrawn in place on a terminal.

    Elsewhere (logs, pipes) a line is printed at every tenth of the way instead.
    """

    WIDTH = 30

    def __init__(self, phase: str, total: int, out: TextIO = sys.stderr) -> None:
        self.phase, self.total, self.out = phase, total, out
        self.done = 0
        self.started = time.monotonic()
        self.tty = out.isatty()
        self.shown_tenth = -1
        self.drawn_at = 0.0

    def __call__(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        tenth = self.done * 10 // self.total
        finished = self.done >= self.total
        if self.tty and (now - self.drawn_at >= 0.1 or finished):
            self.drawn_at = now
            self.out.write("\r" + self.line(now) + ("\n" if finished else ""))
            self.out.flush()
        elif not self.tty and tenth != self.shown_tenth:
            self.shown_tenth = tenth
            self.out.write(self.line(now) + "\n")

    def line(self, now: float) -> str:
        """``write [#####.....]  50%  64.0/128.0 MiB  80.1 MiB/s  1 s left``."""
        share = self.done / self.total
        filled = int(share * self.WIDTH)
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate else 0.0
        bar = "#" * filled + "." * (self.WIDTH - filled)
        amounts = f"{self.done / MIB:.1f}/{self.total / MIB:.1f} MiB"
        speed = f"{rate / MIB:.1f} MiB/s  {left:.0f} s left"
        return f"{self.phase:<6} [{bar}] {share:4.0%}  {amounts}  {speed}"
