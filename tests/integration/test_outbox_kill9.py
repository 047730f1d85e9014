"""kill -9 a writer mid-stream, many times: every acknowledged append survives."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from appliance.store import Outbox, Store
from tests.procs import ROOT

ROUNDS = 50


def run_round(store_dir: Path, seed: int, acked: dict[int, int]) -> None:
    rng = random.Random(seed)
    stop_after = rng.randint(1, 400)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.outbox_writer", str(store_dir), str(seed)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    seen, buffer = 0, b""
    deadline = time.monotonic() + 30
    try:
        while seen < stop_after and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not ready:
                assert proc.poll() is None, "writer died on its own"
                continue
            buffer += os.read(proc.stdout.fileno(), 65536)
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                seq, n = line.split()
                acked[int(seq)] = int(n)
                seen += 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert seen >= stop_after, "writer produced too little before the deadline"


def test_every_acknowledged_append_survives_repeated_kill_9(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    acked: dict[int, int] = {}
    for seed in range(ROUNDS):
        run_round(store_dir, seed, acked)

    store = Store.open(store_dir, map_size_mb=64)
    try:
        outbox = Outbox(store, "cdr")
        stored = dict(outbox.read_batch(limit=10**7))
    finally:
        store.close()

    missing = [seq for seq in acked if seq not in stored]
    assert not missing, f"{len(missing)} acknowledged appends lost, first {missing[:5]}"
    assert all(stored[seq] == f"record-{n}".encode() for seq, n in acked.items())
    numbers = [int(p.split(b"-")[1]) for _, p in sorted(stored.items())]
    assert numbers == list(range(len(numbers))), "stored records have a gap or a duplicate"
    assert len(acked) > ROUNDS
