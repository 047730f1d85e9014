"""Flash throughput: `callmesh flash`'s writer against `dd` onto the same loop device.

Each round writes the same random image to one loop device twice, once with ``dd bs=4M
conv=fsync`` and once with ``drivers.flash.write`` (which also fsyncs), in alternating
order, and prints MiB/s for both and the ratio. The read-back verification is timed
separately (its own MiB/s), as it is extra work dd does not do.

    .venv/bin/python bench/bench_flash.py [--mib 256] [--rounds 3]

Needs root (losetup).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from drivers.flash import Image, Target, verify, write  # noqa: E402

MIB = 1024 * 1024
LOSETUP_S = 30
MIN_MIB_PER_S = 5  # slower than this, a write counts as hung


def _image(path: Path, mib: int) -> Image:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(mib):
            block = os.urandom(MIB)
            digest.update(block)
            out.write(block)
    return Image(path, mib * MIB, digest.hexdigest())


def write_limit_s(mib: int) -> float:
    """How long one pass over the image may take: at least MIN_MIB_PER_S, plus a minute."""
    return 60 + mib / MIN_MIB_PER_S


def _timed_dd(image: Image, device: str, mib: int) -> float:
    started = time.perf_counter()
    dd = harness.spawn(
        ["dd", f"if={image.path}", f"of={device}", "bs=4M", "conv=fsync", "status=none"]
    )
    if harness.wait_exit(dd, write_limit_s(mib), "dd") != 0:
        raise harness.Incomplete(f"dd exited {dd.returncode}")
    return time.perf_counter() - started


def _timed(work: Callable[[Image, Target], None], image: Image, target: Target) -> float:
    started = time.perf_counter()
    work(image, target)
    return time.perf_counter() - started


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="image size in MiB")
    parser.add_argument("--rounds", type=int, default=3)
    harness.run(measure, parser.parse_args())


def _losetup(*argv: str) -> str:
    done = subprocess.run(
        ["losetup", *argv], capture_output=True, text=True, check=True,
        timeout=harness.limit(LOSETUP_S),
    )  # fmt: skip
    return done.stdout.strip()


def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        image = _image(Path(tmp) / "bench.img", args.mib)
        backing = Path(tmp) / "disk.raw"
        with backing.open("wb") as handle:
            handle.truncate((args.mib + 16) * MIB)
        device = _losetup("--find", "--show", str(backing))
        try:
            target = Target.open(Path(device))
            dd, ours, checks = [], [], []
            for round_no in range(args.rounds):
                order = ("dd", "ours") if round_no % 2 == 0 else ("ours", "dd")
                for who in order:
                    if who == "dd":
                        dd.append(args.mib / _timed_dd(image, device, args.mib))
                    else:
                        ours.append(args.mib / _timed(write, image, target))
                checks.append(args.mib / _timed(verify, image, target))
                harness.record(
                    f"round {round_no + 1} MiB/s", f"dd {dd}, ours {ours}, verify {checks}"
                )
        finally:
            subprocess.run(
                ["losetup", "--detach", device], check=False, timeout=harness.limit(LOSETUP_S)
            )
    print(f"image {args.mib} MiB, {args.rounds} rounds, loop device on {tmp}")
    print(f"dd bs=4M conv=fsync   median {statistics.median(dd):7.1f} MiB/s  {dd}")
    print(f"callmesh flash write  median {statistics.median(ours):7.1f} MiB/s  {ours}")
    print(f"ratio (ours / dd)     {statistics.median(ours) / statistics.median(dd):.2f}")
    print(f"read-back verify      median {statistics.median(checks):7.1f} MiB/s")


if __name__ == "__main__":
    main()
