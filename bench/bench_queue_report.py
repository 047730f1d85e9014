"""Queue report benchmark: a month's per-queue report from the rollups vs a GROUP BY over raw CDRs.

Usage: .venv/bin/python bench/bench_queue_report.py [--cdrs N] [--sites N] [--queues N]
                                                     [--rounds N]

On a private PostgreSQL server (tests/pg.py), ``--cdrs`` queued calls spread over one month
(November 2025) are generated inside the database into ``bench_queue_calls``: one row per
queued call with the figures a CDR's queue fields give (queue, outcome, wait, talk time,
service level met), indexed by start time, which is the best a raw table can offer such a
query. The per-queue rollups are then filled from it the way ingest adds calls up
(aggregator/store/queue_rollup.py: counts per outcome, wait and talk time of answered
calls, longest wait of any call, answered calls per wait bucket), per site, queue and UTC
hour, and per UTC day; every site is placed in Europe/Berlin in the directory and its
rollup per local day (aggregator/store/queue_local.py) filled too, complete from the start.

Measured after one warm-up, medians of ``--rounds`` runs of the report and of
``--raw-rounds`` of the same figures computed by a GROUP BY over the raw table in the
same run (checked equal to them first): wall time, and for the report also this
process's CPU time and the server's execution time (EXPLAIN ANALYZE), which on a
loaded machine show what the wall time is made of:

1. the month per queue and day in UTC (read from the daily rollup);
2. the month per queue and local day in Europe/Berlin (the sites' own zone: read from
   the local-day rollup);
3. one site's month per queue and hour;
4. the answer-time distribution (answered calls per wait bucket) of case 1, against the
   same buckets counted by a GROUP BY over the raw table (wall and client CPU only);
5. case 2 read the way it was before the local-day rollup (the hourly rollup, as for a
   zone that is not the sites' own) against the local-day rollup, alternating round by
   round in the same run (``--rounds`` of each).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator import reports
from aggregator.queues.answer_times import answer_time_report
from aggregator.queues.report import (
    QueueQuery,
    local_split,
    queue_report,
    statements,
    utc_offsets,
)
from aggregator.store.db import create_engine
from aggregator.store.queue_rollup import BUCKET_COLUMNS, WAIT_BUCKETS
from aggregator.store.schema import directory_sites, queue_sites
from bench import harness
from tests.pg import postgres_server

MONTH = ("2025-11-01", "2025-12-01")
MONTH_START_MS = 1_761_955_200_000  # 2025-11-01T00:00:00Z
SERVICE_LEVEL_S = 20

_RAW_TABLE = """CREATE UNLOGGED TABLE bench_queue_calls (
    site_id text NOT NULL, queue text NOT NULL, started_ms bigint NOT NULL,
    outcome text NOT NULL, wait_s double precision NOT NULL,
    talk_s double precision NOT NULL, sl_met boolean NOT NULL)"""
# Outcomes in the proportions of a busy queue: 6 answered, 2 abandoned, 1 overflowed and
# 1 timeout in 10; waits up to 2 minutes, talk from 30 s to 5.5 minutes.
_RAW_FILL = """INSERT INTO bench_queue_calls
    SELECT 'site-' || (i %% {sites}), 'q' || (i / {sites} %% {queues}), started_ms, outcome,
           wait_s, CASE WHEN outcome = 'answered' THEN 30 + random() * 300 ELSE 0 END,
           outcome = 'answered' AND wait_s <= {sl}
    FROM (SELECT i, {start} + floor(random() * 30 * 86400000)::bigint AS started_ms,
                 (ARRAY['answered','answered','answered','answered','answered','answered',
                        'abandoned','abandoned','overflowed','timeout'])[1 + (i * 7 + i / 13) %% 10]
                     AS outcome,
                 round((random() * 120)::numeric, 1)::double precision AS wait_s
          FROM generate_series(0, {n} - 1) AS i) AS calls"""
# (``%%``: the driver reads a lone percent sign as a placeholder.)
_OUTCOMES = ("answered", "abandoned", "overflowed", "timeout", "callback", "interrupted")
_LOWS = [low for _, low in WAIT_BUCKETS]
# Answered calls per wait bucket (aggregator/store/queue_rollup.py, WAIT_BUCKETS).
_BUCKETS = ", ".join(
    f"count(*) FILTER (WHERE outcome = 'answered' AND wait_s >= {low}"
    + ("" if high is None else f" AND wait_s < {high}")
    + ")"
    for low, high in zip(_LOWS, [*_LOWS[1:], None], strict=True)
)
# The figures of one group of calls, in the rollup table's column order.
_FIGURES = ", ".join(
    [
        "count(*)",
        *(f"count(*) FILTER (WHERE outcome = '{o}')" for o in _OUTCOMES),
        "count(*) FILTER (WHERE sl_met)",
        "coalesce(sum(wait_s) FILTER (WHERE outcome = 'answered'), 0)",
        "coalesce(sum(talk_s) FILTER (WHERE outcome = 'answered'), 0)",
        "max(wait_s)",
        _BUCKETS,
    ]
)
_ROLLUP_FILL = f"""INSERT INTO queue_rollup
    SELECT site_id, started_ms / 3600000 * 3600000, queue, {_FIGURES}
    FROM bench_queue_calls GROUP BY 1, 2, 3"""  # noqa: S608
_SUMS = ", ".join(
    [
        *(f"sum({c})" for c in ("offered", *_OUTCOMES, "sl_met", "wait_s", "talk_s")),
        "max(max_wait_s)",
        *(f"sum({c})" for c in BUCKET_COLUMNS),
    ]
)
_DAILY_FILL = f"""INSERT INTO queue_rollup_daily
    SELECT site_id, hour_ms / 86400000 * 86400000, queue, {_SUMS}
    FROM queue_rollup GROUP BY 1, 2, 3"""  # noqa: S608
ZONE = "Europe/Berlin"
_LOCAL_FILL = f"""INSERT INTO queue_rollup_local
    SELECT site_id, '{ZONE}',
           (to_timestamp(started_ms / 1000.0) AT TIME ZONE '{ZONE}')::date - DATE '1970-01-01',
           queue, {_FIGURES}
    FROM bench_queue_calls GROUP BY 1, 2, 3, 4"""  # noqa: S608


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--cdrs", type=int, default=10_000_000)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--queues", type=int, default=4, help="queues per site")
    parser.add_argument("--rounds", type=int, default=15, help="runs of the report")
    parser.add_argument("--raw-rounds", type=int, default=3, help="runs of the raw GROUP BY")
    harness.run(measure, parser.parse_args())


def measure(args: argparse.Namespace) -> None:
    with ExitStack() as stack:
        engine = create_engine(stack.enter_context(postgres_server()))
        stack.callback(engine.dispose)
        started = time.perf_counter()
        counts = seed(engine, args)
        print(f"seeded in {time.perf_counter() - started:.0f} s: {counts}")
        harness.record("rows", counts)
        cases = _cases(args)
        for name, query in cases:
            ours, raw = compare(engine, query, args.rounds, args.raw_rounds)
            line = (
                f"{ours.wall_ms:.1f} ms (client CPU {ours.cpu_ms:.1f} ms, server "
                f"{ours.server_ms:.1f} ms) vs raw GROUP BY {raw.wall_ms:.1f} ms (server "
                f"{raw.server_ms:.1f} ms), ratio {ours.wall_ms / raw.wall_ms:.4f}"
            )
            print(f"{name}: {line}")
            harness.record(name, line)
        name, query = cases[0]
        ours, raw = compare_answer_times(engine, query, args.rounds, args.raw_rounds)
        line = (
            f"{ours.wall_ms:.1f} ms (client CPU {ours.cpu_ms:.1f} ms) vs raw GROUP BY "
            f"{raw.wall_ms:.1f} ms, ratio {ours.wall_ms / raw.wall_ms:.4f}"
        )
        print(f"answer times, {name}: {line}")
        harness.record(f"answer times, {name}", line)
        name, query = cases[1]
        hourly, local = compare_paths(engine, query, args.rounds)
        line = (
            f"hourly rollup {hourly.wall_ms:.1f} ms (client CPU {hourly.cpu_ms:.1f} ms, server "
            f"{hourly.server_ms:.1f} ms) vs local-day rollup {local.wall_ms:.1f} ms (client "
            f"CPU {local.cpu_ms:.1f} ms, server {local.server_ms:.1f} ms), ratio "
            f"{local.wall_ms / hourly.wall_ms:.3f}"
        )
        print(f"before and now, {name}: {line}")
        harness.record(f"before and now, {name}", line)


def _cases(args: argparse.Namespace) -> list[tuple[str, QueueQuery]]:
    utc, berlin = ZoneInfo("UTC"), ZoneInfo("Europe/Berlin")

    def month(tz: ZoneInfo) -> tuple[int, int]:
        return reports.parse_time(MONTH[0], tz), reports.parse_time(MONTH[1], tz)

    sites = args.sites * args.queues
    return [
        (f"month per queue and day, UTC ({sites} queues)", QueueQuery(*month(utc), utc)),
        (f"month per queue and local day, Europe/Berlin ({sites} queues)",
         QueueQuery(*month(berlin), berlin)),
        (f"one site's month per queue and hour ({args.queues} queues)",
         QueueQuery(*month(utc), utc, "hour", frozenset({"site-3"}))),
    ]  # fmt: skip


def seed(engine: sa.Engine, args: argparse.Namespace) -> dict[str, int]:
    """The raw calls and the rollups ingest would have kept for them (setup, not measured)."""
    fill = _RAW_FILL.format(n=args.cdrs, sites=args.sites, queues=args.queues,
                            start=MONTH_START_MS, sl=SERVICE_LEVEL_S)  # fmt: skip
    with engine.begin() as conn:
        conn.exec_driver_sql(_RAW_TABLE)
        conn.exec_driver_sql(fill)
        conn.exec_driver_sql("CREATE INDEX ix_bench_queue_calls ON bench_queue_calls (started_ms)")
        conn.exec_driver_sql(_ROLLUP_FILL)
        conn.exec_driver_sql(_DAILY_FILL)
        conn.exec_driver_sql(_LOCAL_FILL)
        sites = [f"site-{n}" for n in range(args.sites)]
        conn.execute(directory_sites.insert(), [
            {"id": site, "profile": "branch", "sip_address": f"10.0.{n // 250}.{n % 250 + 1}",
             "timezone": ZONE, "extensions": [], "ranges": []}
            for n, site in enumerate(sites)])  # fmt: skip
        conn.execute(queue_sites.insert(),
                     [{"site_id": site, "tz": ZONE, "since_day": 0} for site in sites])  # fmt: skip
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # What autovacuum and the checkpointer would do by themselves after such a load,
        # done now so they do not run during the measures.
        conn.exec_driver_sql("VACUUM ANALYZE")
        conn.exec_driver_sql("CHECKPOINT")
        return {
            table: int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())  # noqa: S608
            for table in (
                "bench_queue_calls",
                "queue_rollup",
                "queue_rollup_daily",
                "queue_rollup_local",
            )
        }


# One run: wall time, client CPU time, server execution time (ms).
Sample = tuple[float, float, float]


@dataclass(frozen=True)
class Timing:
    """Medians: wall time, this process's CPU time, the server's execution time."""

    wall_ms: float
    cpu_ms: float
    server_ms: float


def compare(
    engine: sa.Engine, query: QueueQuery, rounds: int, raw_rounds: int
) -> tuple[Timing, Timing]:
    """The report and the raw GROUP BY, timed; their figures must agree."""
    with engine.connect() as conn:
        ours = queue_report(conn, query)
        raw = raw_report(conn, query)
        if _offered(ours) != _offered(raw):
            raise harness.Incomplete("the report and the raw GROUP BY disagree")
        ours_t = _timed(lambda: queue_report(conn, query), rounds, conn, _report_sqls(conn, query))
        raw_t = _timed(lambda: raw_report(conn, query), raw_rounds, conn, [_raw_sql(query)])
    return ours_t, raw_t


def compare_answer_times(
    engine: sa.Engine, query: QueueQuery, rounds: int, raw_rounds: int
) -> tuple[Timing, Timing]:
    """The answer-time report and the raw GROUP BY, timed (wall and client CPU only)."""
    raw_sql = _raw_sql(query, _BUCKETS)
    with engine.connect() as conn:
        ours = answer_time_report(conn, query)
        raw = conn.exec_driver_sql(raw_sql).all()
        ours_total = [sum(line[c] for line in ours) for c in BUCKET_COLUMNS]
        raw_total = [sum(row[3 + i] for row in raw) for i in range(len(BUCKET_COLUMNS))]
        if ours_total != raw_total:
            raise harness.Incomplete("the answer times and the raw GROUP BY disagree")
        ours_t = _timed(lambda: answer_time_report(conn, query), rounds, conn, [])
        raw_t = _timed(lambda: conn.exec_driver_sql(raw_sql).all(), raw_rounds, conn, [])
    return ours_t, raw_t


def compare_paths(engine: sa.Engine, query: QueueQuery, rounds: int) -> tuple[Timing, Timing]:
    """The report from the hourly rollup (the sites' local-day rows hidden from it by an
    uncommitted delete of ``queue_sites``) and from the local-day rollup, a round of
    each in turn; their lines must be equal."""
    with engine.connect() as before, engine.connect() as now:
        before.execute(sa.delete(queue_sites))
        if not _same_lines(queue_report(before, query), queue_report(now, query)):
            raise harness.Incomplete("the hourly and the local-day rollups disagree")
        runs = [(conn, _report_sqls(conn, query)) for conn in (before, now)]
        rows: list[list[Sample]] = [[], []]
        for _ in range(rounds):
            for (conn, sqls), times in zip(runs, rows, strict=True):
                times.append(_once(lambda c=conn: queue_report(c, query), conn, sqls))
        before.rollback()
    hourly, local = (Timing(*(statistics.median(t) for t in zip(*r, strict=True))) for r in rows)
    return hourly, local


def _same_lines(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal lines; figures in seconds within a rounding step (sums added in another order)."""
    return len(a) == len(b) and all(
        x.keys() == y.keys()
        and all(abs(x[k] - y[k]) <= 0.11 if isinstance(x[k], float) else x[k] == y[k] for k in x)
        for x, y in zip(a, b, strict=True)
    )


def _report_sqls(conn: sa.Connection, query: QueueQuery) -> list[str]:
    """The report's statements with their values in line, for EXPLAIN ANALYZE."""
    return [
        str(select.compile(conn.engine, compile_kwargs={"literal_binds": True}))
        for select in statements(query, split=local_split(conn, query))
    ]


def _timed(run: Callable[[], object], rounds: int, conn: sa.Connection, sqls: list[str]) -> Timing:
    run()
    times = [_once(run, conn, sqls) for _ in range(rounds)]
    return Timing(*(statistics.median(t) for t in zip(*times, strict=True)))


def _once(run: Callable[[], object], conn: sa.Connection, sqls: list[str]) -> Sample:
    """Wall and client CPU time of one run (ms), and the server's execution time of ``sqls``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    walls, cpus = (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
    server = 0.0
    for sql in sqls:
        plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + sql.replace("%", "%%"))
        server += float(plan.scalar_one()[0]["Execution Time"])
    return walls, cpus, server


def raw_report(conn: sa.Connection, query: QueueQuery) -> list[dict[str, Any]]:
    """The same lines from the raw calls: GROUP BY site, queue and period."""
    return [
        {"site_id": site, "queue": queue, "period": period, "offered": int(offered)}
        for site, queue, period, offered, *_ in conn.exec_driver_sql(_raw_sql(query))
    ]


def _raw_sql(query: QueueQuery, figures: str = _FIGURES) -> str:
    period = _local_day(query) if query.interval == "day" else "started_ms / 3600000 * 3600000"
    sites = ""
    if query.sites is not None:
        sites = " AND site_id IN ('" + "','".join(sorted(query.sites)) + "')"
    return (
        f"SELECT site_id, queue, {period} AS period, {figures} FROM bench_queue_calls "  # noqa: S608
        f"WHERE started_ms >= {query.start_ms} AND started_ms < {query.end_ms}{sites} "
        "GROUP BY 1, 2, 3"
    )


def _local_day(query: QueueQuery) -> str:
    """The local day of each call's hour, as the report works it out (days since the first)."""
    hour = "started_ms / 3600000 * 3600000"
    offsets = utc_offsets(query.start_ms - query.start_ms % 3_600_000, query.end_ms, query.tz)
    shift = str(offsets[-1][1])
    for (_, offset), (changed, _) in reversed(list(itertools.pairwise(offsets))):
        shift = f"CASE WHEN {hour} < {changed} THEN {offset} ELSE {shift} END"
    first = datetime.datetime.fromtimestamp(query.start_ms / 1000, query.tz).date()
    base = int(datetime.datetime.combine(first, datetime.time(), datetime.UTC).timestamp() * 1000)
    return f"({hour} + {shift} - {base}) / 86400000"


def _offered(lines: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return sorted((line["site_id"], line["queue"], line["offered"]) for line in lines)


if __name__ == "__main__":
    main()
