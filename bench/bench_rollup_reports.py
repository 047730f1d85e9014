"""HQ reports at 100 million CDRs: the month summary and the queue report from the rollups.

Usage: .venv/bin/python bench/bench_rollup_reports.py [--cdrs N[,N...]] [--sites N]
                                                      [--rounds N] [--check-cdrs N]

On a private PostgreSQL server (tests/pg.py), for each ``--cdrs`` (default 100,000,000) a
new database gets the rollup rows that many queued calls of one month (November 2025) leave
at HQ, written inside PostgreSQL from the model in bench/rollup_model.py without storing
the calls: the reports below read only the rollups, and 100 million stored CDRs (about
836 bytes each with their indexes) would not fit on this machine's disk. With
``--check-cdrs N`` the run first stores N of the model's calls through HQ's real ingest
(aggregator/store/cdrs.py) and requires the generated rollups and lost-call rows of N
calls to equal them row for row. Before writing anything the run checks the disk has
room, and stops with ``error_id=bench-disk-too-small`` if not. Each database is dropped
after its measures.

Measured after one warm-up, medians of ``--rounds`` runs, each on one open connection as
the API and the console call them: wall time, this process's CPU time, and the server's
execution time (EXPLAIN ANALYZE of the statements the run sent, captured as it ran),
with the rows the plans read, the pages they touched and the tables they read (a plan
reading ``cdrs`` fails the run):

1. the month summary by site and day, UTC (the console's report page) and Europe/Berlin
   (``GET /api/v1/reports/summary``), and by site and hour (the API's other grouping);
2. the report page's other figures: calls per hour of the day, totals per site, trunk
   and extension, the answer-time distribution;
3. the month per queue: UTC days, local days in Europe/Berlin (the sites' own zone), and
   one site by the hour;
4. the lost-calls list over ``queue_unanswered`` (a row per call not answered, written by
   the model too): the report page's first 50, the API's first page of 100, a later
   page, one site, one queue name, one site's queue and a site with none. Its plans look
   up, per line, what followed in ``cdrs`` (empty here: the lookups find nothing);
5. the reports of 1 and the calls per hour of the day, which read the hourly rollup's
   site rows, without their index (revision 0012: dropped inside a transaction that is
   rolled back after each run) and with it, a run of each in turn.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator import reports
from aggregator.console.queue_tables import CALLBACK_WINDOW_MS, LOST_SHOWN
from aggregator.queues.answer_times import answer_time_report
from aggregator.queues.lost import LostQuery, lost_calls
from aggregator.queues.report import QueueQuery, queue_report
from aggregator.store.db import create_engine, driver_url
from bench import harness
from bench.rollup_model import AGENTS, QUEUES, TRUNKS, Model, generate, ingest_calls
from bench.rollup_model import rollup_differences as differences
from tests.pg import fresh_database, postgres_server

MONTH = ("2025-11-01", "2025-12-01")
BYTES_PER_CDR = 836  # a stored CDR with its indexes (bench/RESULTS.md, HQ nodes)
BYTES_PER_ROLLUP_ROW = 400  # the widest rollup row (queue) with its keys, generously
BYTES_PER_UNANSWERED = 400  # a queue_unanswered row with its three indexes, generously
UNANSWERED_SHARE = 0.4  # the model's calls not answered (bench/rollup_model.py, OUTCOMES)
DISK_KEPT = 5 * 1024**3  # left free for the other users of the disk
SITE_INDEX = "ix_rollup_site_hour"  # the hourly rollup's site rows (revision 0012)
SCAN_NODES = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")

# (statement, parameters) as the driver received them
Sent = list[tuple[str, Any]]


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--cdrs", default="100000000", help="comma-separated scales")
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15, help="runs of each report")
    parser.add_argument(
        "--check-cdrs", type=int, default=0, help="store this many through the ingest, compare"
    )
    harness.run(measure, parser.parse_args())


def measure(args: argparse.Namespace) -> None:
    scales = [int(n) for n in args.cdrs.split(",")]
    with ExitStack() as stack:
        server = stack.enter_context(postgres_server())
        check_disk(server, [Model(n, args.sites) for n in scales], args.check_cdrs)
        if args.check_cdrs:
            check_model(server, Model(args.check_cdrs, args.sites))
        for n in scales:
            with fresh_database(server, f"rollups_{n}") as url:
                measure_scale(url, Model(n, args.sites), args.rounds)


def rollup_rows(model: Model) -> int:
    """An upper bound of the rollup rows the model writes (hourly, daily, local day)."""
    per_hour = 1 + AGENTS + TRUNKS + QUEUES + AGENTS
    hours = model.sites * model.hours * per_hour
    return hours + 2 * hours // 24


def check_disk(server: str, models: list[Model], check_cdrs: int) -> None:
    """Stop before writing when the server's disk cannot hold what the run writes."""
    data_dir = _data_dir(server)
    needed = max(
        rollup_rows(m) * BYTES_PER_ROLLUP_ROW
        + int(m.cdrs * UNANSWERED_SHARE) * BYTES_PER_UNANSWERED * 2  # the rows, and their WAL
        for m in models
    )
    needed += 2 * check_cdrs * BYTES_PER_CDR  # the stored calls, and their WAL
    free = shutil.disk_usage(data_dir).free
    print(f"disk: {needed / 1e9:.2f} GB needed, {free / 1e9:.1f} GB free at {data_dir}")
    if needed > free - DISK_KEPT:
        raise harness.Incomplete(
            f"error_id=bench-disk-too-small: the run needs {needed / 1e9:.2f} GB and keeps "
            f"{DISK_KEPT / 1e9:.0f} GB free, but {data_dir} has {free / 1e9:.1f} GB free; "
            "free some space or lower --check-cdrs"
        )


def _data_dir(server: str) -> str:
    engine = sa.create_engine(driver_url(server))
    with engine.connect() as conn:
        found = str(conn.exec_driver_sql("SHOW data_directory").scalar_one())
    engine.dispose()
    return found


def check_model(server: str, model: Model) -> None:
    """Store the model's calls through the ingest and require the generated rollups to
    equal its rollups."""
    with fresh_database(server, "ingested") as a, fresh_database(server, "generated") as b:
        ingested, generated = create_engine(a), create_engine(b)
        started = time.perf_counter()
        ingest_calls(ingested, model)
        stored = time.perf_counter() - started
        generate(generated, model)
        differ = {table: n for table, n in differences(ingested, generated).items() if n}
        ingested.dispose()
        generated.dispose()
    line = f"{model.cdrs:,} calls stored through the ingest in {stored:.0f} s"
    if differ:
        raise harness.Incomplete(f"{line}: generated rollups differ (rows per table: {differ})")
    print(f"model check: {line}; the generated rollups equal them in every table")
    harness.record("model check", line)


@dataclass(frozen=True)
class Timing:
    """Medians: wall time, this process's CPU time, server execution time; rows the
    plans read and pages they touched, lines answered, the tables read."""

    wall_ms: float
    cpu_ms: float
    server_ms: float
    rows_read: int
    pages: int
    lines: int
    tables: frozenset[str]


def measure_scale(url: str, model: Model, rounds: int) -> None:
    """Generate the rollups of ``model``, then time every report over them."""
    engine = create_engine(url)
    try:
        started = time.perf_counter()
        counts = generate(engine, model)
        with engine.connect() as conn:
            size = int(conn.exec_driver_sql("SELECT pg_database_size(current_database())")
                       .scalar_one())  # fmt: skip
        print(f"\n{model.cdrs:,} CDRs, {model.sites} sites: rollups generated in "
              f"{time.perf_counter() - started:.1f} s, {size / 1e6:.0f} MB: {counts}")  # fmt: skip
        harness.record(f"rollups of {model.cdrs:,} CDRs", counts)
        for name, report in cases(model):
            timing = timed(engine, report, rounds)
            line = _line(timing)
            print(f"  {name}: {line}")
            harness.record(f"{model.cdrs:,} CDRs, {name}", line)
        for name, report in lost_cases(engine):
            timing = timed(engine, report, rounds, lookups=True)
            line = _line(timing)
            print(f"  {name}: {line}")
            harness.record(f"{model.cdrs:,} CDRs, {name}", line)
        for name, report in cases(model)[:4]:
            before, now = compare_site_index(engine, report, rounds)
            line = f"before {_line(before)}; now {_line(now)}"
            print(f"  without and with {SITE_INDEX}, {name}: {line}")
            harness.record(f"{model.cdrs:,} CDRs, {SITE_INDEX}, {name}", line)
    finally:
        engine.dispose()


def _line(timing: Timing) -> str:
    read = f"{timing.rows_read:,} rows ({timing.pages:,} pages)"
    return (f"{timing.wall_ms:.1f} ms (client CPU {timing.cpu_ms:.1f} ms, server "
            f"{timing.server_ms:.1f} ms), {timing.lines:,} lines, {read} read from "
            f"{', '.join(sorted(timing.tables))}")  # fmt: skip


Report = Callable[[sa.Connection], list[Any]]


def cases(model: Model) -> list[tuple[str, Report]]:
    """The reports timed, by name."""
    utc, berlin = ZoneInfo("UTC"), ZoneInfo("Europe/Berlin")
    u = (reports.parse_time(MONTH[0], utc), reports.parse_time(MONTH[1], utc))
    b = (reports.parse_time(MONTH[0], berlin), reports.parse_time(MONTH[1], berlin))
    page_figures: list[tuple[str, Report]] = [
        ("summary by site and day, UTC (report page)",
         lambda c: reports.summary(c, None, *u, utc, "day")),
        ("summary by site and day, Europe/Berlin (API)",
         lambda c: reports.summary(c, None, *b, berlin, "day")),
        ("summary by site and hour, UTC (API)",
         lambda c: reports.summary(c, None, *u, utc, "hour")),
        ("calls per hour of the day (report page)",
         lambda c: reports.hour_of_day_calls(c, None, *u, utc)),
        *((f"totals per {dim} (report page)",
           lambda c, dim=dim: reports.by_key(c, dim, None, *u))
          for dim in ("site", "trunk", "extension")),
        ("answer times per queue and day, UTC (report page)",
         lambda c: answer_time_report(c, QueueQuery(*u, utc))),
    ]  # fmt: skip
    queues = model.sites * QUEUES
    return [
        *page_figures,
        (f"queue report per queue and day, UTC ({queues} queues)",
         lambda c: queue_report(c, QueueQuery(*u, utc))),
        (f"queue report per queue and local day, Europe/Berlin ({queues} queues)",
         lambda c: queue_report(c, QueueQuery(*b, berlin))),
        (f"queue report, one site per queue and hour ({QUEUES} queues)",
         lambda c: queue_report(c, QueueQuery(*u, utc, "hour", frozenset({"site-3"})))),
    ]  # fmt: skip


def lost_cases(engine: sa.Engine) -> list[tuple[str, Report]]:
    """The lost-calls list as the report page (its first 50) and the API (pages of 100)
    ask for it; a later page is the one after the first 100 lost calls of 15 November."""
    utc = ZoneInfo("UTC")
    u = (reports.parse_time(MONTH[0], utc), reports.parse_time(MONTH[1], utc))
    month = LostQuery(*u, utc, CALLBACK_WINDOW_MS)
    with engine.connect() as conn:
        mid = reports.parse_time("2025-11-15", utc)
        _, later = lost_calls(conn, LostQuery(mid, u[1], utc, CALLBACK_WINDOW_MS), 100, None)

    def page(query: LostQuery, size: int, cursor: str | None = None) -> Report:
        return lambda c: lost_calls(c, query, size, cursor)[0]

    site, queue = frozenset({"site-3"}), "q2"
    return [
        ("lost calls, first 50 (report page)", page(month, LOST_SHOWN)),
        ("lost calls, first page of 100 (API)", page(month, 100)),
        ("lost calls, a later page of 100 (API, from 15 November)", page(month, 100, later)),
        ("lost calls, one site, first page of 100 (API)",
         page(dataclasses.replace(month, sites=site), 100)),
        ("lost calls, one queue name, first page of 100 (API)",
         page(dataclasses.replace(month, queue=queue), 100)),
        ("lost calls, one site's queue, first page of 100 (API)",
         page(dataclasses.replace(month, sites=site, queue=queue), 100)),
        ("lost calls, a site with none, first page of 100 (API)",
         page(dataclasses.replace(month, sites=frozenset({"site-none"})), 100)),
    ]  # fmt: skip


def timed(engine: sa.Engine, report: Report, rounds: int, lookups: bool = False) -> Timing:
    """Medians over ``rounds`` runs after one warm-up; each run's statements then explained.
    ``lookups``: the report may look rows up in ``cdrs`` (the lost-calls list)."""
    with engine.connect() as conn:
        lines = len(report(conn))
        return _timing([_sample(conn, report) for _ in range(rounds)], lines, lookups)


def compare_site_index(engine: sa.Engine, report: Report, rounds: int) -> tuple[Timing, Timing]:
    """The report without the site rows' index (revision 0012; dropped in a transaction
    rolled back after the run) and with it, a run of each in turn."""
    with engine.connect() as conn:
        lines = len(report(conn))
        before, now = [], []
        for _ in range(rounds):
            conn.exec_driver_sql(f"DROP INDEX {SITE_INDEX}")
            before.append(_sample(conn, report))
            conn.rollback()
            now.append(_sample(conn, report))
            conn.rollback()
    return _timing(before, lines), _timing(now, lines)


# One run: wall, client CPU and server time (ms), rows and pages read, tables read.
Sample = tuple[float, float, float, int, int, set[str]]


def _sample(conn: sa.Connection, report: Report) -> Sample:
    with _sent(conn) as sent:
        wall, cpu = time.perf_counter(), time.process_time()
        report(conn)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return (wall * 1000, cpu * 1000, *_explained(conn, sent))


def _timing(samples: list[Sample], lines: int, lookups: bool = False) -> Timing:
    touched = set().union(*(s[5] for s in samples))
    if not lookups and any(t == "cdrs" or t.startswith("cdrs_p") for t in touched):
        raise harness.Incomplete(f"a report read the CDR table: {sorted(touched)}")
    return Timing(
        statistics.median(s[0] for s in samples),
        statistics.median(s[1] for s in samples),
        statistics.median(s[2] for s in samples),
        int(statistics.median(s[3] for s in samples)),
        int(statistics.median(s[4] for s in samples)),
        lines,
        frozenset(touched),
    )


@contextmanager
def _sent(conn: sa.Connection) -> Iterator[Sent]:
    """The statements ``conn`` sends inside the block, as the driver gets them."""
    sent: Sent = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    sa.event.listen(conn, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(conn, "before_cursor_execute", record)


def _explained(conn: sa.Connection, sent: Sent) -> tuple[float, int, int, set[str]]:
    """Server execution time (ms) of ``sent``, the rows their plans' scans read, the pages
    (8 KiB, from the cache or the disk) they touched, the tables."""
    server, rows, pages, tables = 0.0, 0, 0, set[str]()
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor:
        for statement, parameters in sent:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
            plan = cursor.fetchone()[0][0]
            server += float(plan["Execution Time"])
            pages += plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
            for node in _nodes(plan["Plan"]):
                if node["Node Type"] in SCAN_NODES:
                    rows += int(node["Actual Rows"] * node["Actual Loops"])
                if "Relation Name" in node:
                    tables.add(node["Relation Name"])
    return server, rows, pages, tables


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


if __name__ == "__main__":
    main()
