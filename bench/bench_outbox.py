"""Outbox appends/s with durable commits vs raw lmdb put+commit on the same disk.

Usage: .venv/bin/python bench/bench_outbox.py [--dir DIR] [--seconds S] [--rounds N]

Both sides use the same LMDB flags (sync and metasync on: every commit is fsync'd) in
sibling directories, and run in alternating rounds so machine noise hits both alike.
Prints appends/s for single-entry commits and for batches of 100, and the ratio
outbox / raw (1.0 = no overhead over LMDB itself).
"""

from __future__ import annotations

import argparse
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.store import Outbox, Store
from bench import harness

PAYLOAD = b"x" * 300  # about the size of a msgpack'd CDR
KEY = struct.Struct(">Q")


def raw_env(path: Path) -> Any:
    return lmdb.open(str(path), map_size=4 << 30, max_dbs=4, sync=True, metasync=True)


def rate(step: Callable[[], int], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += step()
    return done / (time.perf_counter() - start)


def run(base: Path, seconds: float, rounds: int) -> None:
    store = Store.open(base / "outbox", map_size_mb=4096)
    outbox = Outbox(store, "bench")
    env = raw_env(base / "raw")
    db = env.open_db(b"bench")
    counter = [0]

    def raw_put(n: int) -> int:
        with env.begin(write=True, db=db) as txn:
            for _ in range(n):
                counter[0] += 1
                txn.put(KEY.pack(counter[0]), PAYLOAD, append=True)
        return n

    batch = [PAYLOAD] * 100
    results: dict[str, list[float]] = {k: [] for k in ("out1", "raw1", "out100", "raw100")}
    for round_no in range(rounds):
        results["out1"].append(rate(lambda: len(outbox.append_many([PAYLOAD])), seconds))
        results["raw1"].append(rate(lambda: raw_put(1), seconds))
        results["out100"].append(rate(lambda: len(outbox.append_many(batch)), seconds))
        results["raw100"].append(rate(lambda: raw_put(100), seconds))
        harness.record(
            f"round {round_no + 1} (outbox/s, raw/s)",
            ", ".join(f"{k} {v[-1]:,.0f}" for k, v in results.items()),
        )
    store.close()
    env.close()
    best = {k: max(v) for k, v in results.items()}
    print(f"disk: {base}  payload {len(PAYLOAD)} B  rounds {rounds} x {seconds}s (best of)")
    print(f"{'':<22}{'outbox/s':>12}{'raw lmdb/s':>12}{'ratio':>8}")
    for label, a, b in (("1 per commit", "out1", "raw1"), ("100 per commit", "out100", "raw100")):
        print(f"{label:<22}{best[a]:>12,.0f}{best[b]:>12,.0f}{best[a] / best[b]:>8.2f}")


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to put the stores (default: a temp dir)")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    harness.run(measure, parser.parse_args())


def measure(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="callmesh-bench-", dir=args.dir))
    try:
        run(base, args.seconds, args.rounds)
    finally:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
