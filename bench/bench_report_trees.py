"""HQ reports of two source trees, in turn, against one database of generated rollups.

Usage: .venv/bin/python bench/bench_report_trees.py --before DIR [--cdrs N] [--turns N]
                                                     [--rounds N]

A code change to the reports is measured against the code before it: ``--before`` is a
copy of the older tree (``git archive main | tar -x -C DIR``), the tree this script sits
in is the newer. On a private PostgreSQL server (tests/pg.py) one database gets the
rollups of ``--cdrs`` calls from bench/rollup_model.py (default 10,000,000: the queue
report and the summaries read the same rows as at 100 million, the totals per extension
26,400 daily rows against 30,000). Then, ``--turns`` times, each tree in turn runs every
report in a fresh process (its own code imported) on one open connection: one warm-up,
then ``--rounds`` runs, medians of wall and this process's CPU time, and the server's
execution time (EXPLAIN ANALYZE of the statements sent, median of five). The answers of
the two trees are compared by a digest of their JSON; a difference fails the run.
Printed per report and tree: the medians over the turns, with their spread.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

TREE = Path(__file__).resolve().parent.parent
MONTH = ("2025-11-01", "2025-12-01")
Report = Callable[[sa.Connection], Any]


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
        return
    sys.path.insert(0, str(TREE))
    from bench import harness

    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the older tree")
    parser.add_argument("--cdrs", type=int, default=10_000_000)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=11)
    harness.run(measure, parser.parse_args())


def measure(args: argparse.Namespace) -> None:
    from aggregator.store.db import create_engine
    from bench import harness
    from bench.rollup_model import Model, generate
    from tests.pg import fresh_database, postgres_server

    trees = {"before": Path(args.before).resolve(), "now": TREE}
    runs: dict[str, list[dict[str, list[Any]]]] = {name: [] for name in trees}
    with postgres_server() as server, fresh_database(server, "trees") as url:
        engine = create_engine(url)
        generate(engine, Model(args.cdrs))
        engine.dispose()
        for _ in range(args.turns):
            for name, tree in trees.items():
                runs[name].append(_run_child(tree, url, args.rounds))
    for report in runs["now"][0]:
        digests = {run[report][3] for name in trees for run in runs[name]}
        if len(digests) > 1:
            raise harness.Incomplete(f"{report}: the trees answer differently")
        line = "; ".join(f"{name} {_medians([r[report] for r in runs[name]])}" for name in trees)
        print(f"  {report}: {line}")
        harness.record(report, line)


def _run_child(tree: Path, url: str, rounds: int) -> dict[str, list[Any]]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [sys.executable, __file__, "--child", url, str(rounds)],
        cwd=tree, env=env, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    found: dict[str, list[Any]] = json.loads(done.stdout.splitlines()[-1])
    return found


def _medians(samples: list[list[Any]]) -> str:
    parts = []
    for label, i in (("wall", 0), ("client CPU", 1), ("server", 2)):
        values = [s[i] for s in samples]
        parts.append(f"{label} {statistics.median(values):.1f} ms "
                     f"({min(values):.1f}-{max(values):.1f})")  # fmt: skip
    return ", ".join(parts)


def child(url: str, rounds: int) -> dict[str, list[Any]]:
    """In the tree on the path: each report's medians (wall, CPU, server ms) and digest."""
    from aggregator.store.db import create_engine

    engine = create_engine(url)
    out: dict[str, list[Any]] = {}
    with engine.connect() as conn:
        for name, report in _reports().items():
            answer = json.dumps(report(conn), default=str).encode()
            walls, cpus = [], []
            for _ in range(rounds):
                wall, cpu = time.perf_counter(), time.process_time()
                report(conn)
                walls.append((time.perf_counter() - wall) * 1000)
                cpus.append((time.process_time() - cpu) * 1000)
            server = statistics.median(_server_ms(conn, report) for _ in range(5))
            digest = hashlib.sha256(answer).hexdigest()
            out[name] = [statistics.median(walls), statistics.median(cpus), server, digest]
    engine.dispose()
    return out


def _reports() -> dict[str, Report]:
    from zoneinfo import ZoneInfo

    from aggregator import reports
    from aggregator.queues.answer_times import answer_time_report
    from aggregator.queues.report import QueueQuery, queue_report

    utc, berlin = ZoneInfo("UTC"), ZoneInfo("Europe/Berlin")
    u = (reports.parse_time(MONTH[0], utc), reports.parse_time(MONTH[1], utc))
    b = (reports.parse_time(MONTH[0], berlin), reports.parse_time(MONTH[1], berlin))
    one_site = frozenset({"site-3"})
    return {
        "summary by site and day, UTC": lambda c: reports.summary(c, None, *u, utc, "day"),
        "summary by site and day, Europe/Berlin":
            lambda c: reports.summary(c, None, *b, berlin, "day"),
        "totals per extension": lambda c: reports.by_key(c, "extension", None, *u),
        "answer times per queue and day, UTC": lambda c: answer_time_report(c, QueueQuery(*u, utc)),
        "queue report per queue and day, UTC": lambda c: queue_report(c, QueueQuery(*u, utc)),
        "queue report per queue and local day, Europe/Berlin":
            lambda c: queue_report(c, QueueQuery(*b, berlin)),
        "queue report, one site per queue and hour":
            lambda c: queue_report(c, QueueQuery(*u, utc, "hour", one_site)),
    }  # fmt: skip


def _server_ms(conn: sa.Connection, report: Report) -> float:
    """Server execution time of the statements ``report`` sends (EXPLAIN ANALYZE)."""
    sent: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    sa.event.listen(conn, "before_cursor_execute", record)
    try:
        report(conn)
    finally:
        sa.event.remove(conn, "before_cursor_execute", record)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    total = 0.0
    with cursor:
        for statement, parameters in sent:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            total += float(cursor.fetchone()[0][0]["Execution Time"])
    return total


if __name__ == "__main__":
    main()
