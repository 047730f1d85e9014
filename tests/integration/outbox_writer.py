"""A writer process for the kill -9 test: appends forever, reporting each durable commit.

Usage: python -m tests.integration.outbox_writer STORE_DIR SEED

Each payload is ``record-<n>``, continuing from the last record in the outbox, so the
stored payloads must always form one gap-free sequence. After every commit returns it
prints ``<seq> <n>`` per entry, so the parent knows exactly what was acknowledged.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from appliance.store import Outbox, Store


def main() -> None:
    store = Store.open(Path(sys.argv[1]), map_size_mb=64)
    rng = random.Random(int(sys.argv[2]))
    outbox = Outbox(store, "cdr")
    last = outbox.read_batch(after=outbox.last_seq() - 1, limit=1)
    n = int(last[0][1].split(b"-")[1]) + 1 if last else 0
    while True:
        size = rng.choice((1, 1, 1, 3, 10))
        payloads = [f"record-{n + i}".encode() for i in range(size)]
        seqs = outbox.append_many(payloads)
        sys.stdout.write("".join(f"{s} {n + i}\n" for i, s in enumerate(seqs)))
        sys.stdout.flush()
        n += size


if __name__ == "__main__":
    main()
