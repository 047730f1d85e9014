"""CDR ingest into PostgreSQL by COPY: monthly partitions against the plain table before them.

Usage: .venv/bin/python bench/bench_partitions.py [--cdrs N] [--rounds N] [--before REV]

One throwaway PostgreSQL server; the code before the partitions (the merge base of this
branch and ``--before``, default ``main``) is unpacked with ``git archive`` and run from
there with the same virtualenv. Each round measures both trees, in alternating order,
each on a new empty database: the same ``N`` CDRs, in time order across the start of
the current month, stored by ``CdrStore.store_many`` (COPY into the staging table,
``INSERT ... ON CONFLICT DO NOTHING``, rollups) in groups of four 5,000-CDR batches, one
commit per group, as the ingest's group commit does; then the same CDRs again (all
duplicates). Prints each measure, the ratio after/before per round, and the median.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 5000
GROUP = 4


def measure(url: str, n: int) -> None:
    """Run inside one tree: print ``new_rate duplicate_rate`` for ``n`` CDRs into ``url``."""
    sys.path.insert(0, str(Path.cwd()))
    from aggregator.store.cdr_rows import parse_batch
    from aggregator.store.cdrs import CdrStore
    from aggregator.store.db import create_engine
    from tests.sync_env import make_cdr

    # In time order, one a second, the first half before the start of this month and the
    # second half after it, as a site's outbox sends them.
    now = datetime.datetime.now(datetime.UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    records = [(i + 1, make_cdr(i, start=month_start - n // 2 + i)) for i in range(n)]
    engine = create_engine(url)
    store = CdrStore(engine)
    rates = []
    for _ in ("new", "duplicates"):
        began = time.perf_counter()
        for first in range(0, n, BATCH * GROUP):
            group = records[first : first + BATCH * GROUP]
            store.store_many(
                [parse_batch("site-a", group[i : i + BATCH]) for i in range(0, len(group), BATCH)]
            )
        rates.append(n / (time.perf_counter() - began))
    engine.dispose()
    print(f"{rates[0]:.0f} {rates[1]:.0f}")


def _unpack(revision: str, into: Path) -> Path:
    """The tree of ``revision`` where this branch left it (their merge base)."""
    base = subprocess.run(
        ["git", "merge-base", "HEAD", revision], cwd=ROOT, capture_output=True, check=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", base], cwd=ROOT, capture_output=True, check=True
    ).stdout
    tree = into / "before"
    tree.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    (tree / "bench" / "bench_partitions.py").write_text(Path(__file__).read_text())
    return tree


def _run(tree: Path, url: str, n: int) -> tuple[float, float]:
    done = subprocess.run(
        [sys.executable, "bench/bench_partitions.py", "--measure", url, "--cdrs", str(n)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )
    new, duplicates = done.stdout.split()[-2:]
    return float(new), float(duplicates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdrs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default="main", help="git revision of the code before")
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.cdrs)
        return
    sys.path.insert(0, str(ROOT))
    from tests.pg import fresh_database, postgres_server

    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-parts-")))
        trees = {"before": _unpack(args.before, scratch), "after": ROOT}
        server = stack.enter_context(postgres_server())
        ratios = []
        for round_no in range(args.rounds):
            order = ["before", "after"] if round_no % 2 == 0 else ["after", "before"]
            rates = {}
            for name in order:
                with fresh_database(server, "bench") as url:
                    rates[name] = _run(trees[name], url, args.cdrs)
                print(f"round {round_no + 1} {name:6}: new {rates[name][0]:,.0f}/s, "
                      f"duplicates {rates[name][1]:,.0f}/s", flush=True)  # fmt: skip
            ratio = rates["after"][0] / rates["before"][0]
            ratios.append(ratio)
            dup = rates["after"][1] / rates["before"][1]
            print(f"round {round_no + 1} after/before: new {ratio:.2f}, duplicates {dup:.2f}")
        print(f"median ratio after/before (new CDRs): {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
