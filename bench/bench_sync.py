"""Sync link benchmarks: CDR sync rate, recording upload rate, report latency.

Usage: .venv/bin/python bench/bench_sync.py [--cdrs N] [--report-cdrs N] [--postgres]
                                              [--skip-reports] [--skip-sync] [--skip-sqlite]
                                              [--upload-mb N] [--chunk-kib N] [--rounds N]

The sync measures (1 and 2) run ``--rounds`` times, each round measuring its limits
beside ours; the script prints every round and the best and median of each ratio.

1. End-to-end CDR sync (appliance outbox -> aggregator commit -> ack -> outbox delete),
   real processes on loopback, vs the database's own batched insert rate (the same rows
   in batches of 5000, the sync's batch size, one commit each) measured just before and
   just after it in the same round (their combined rate is the round's limit); with the
   CPU the aggregator and the appliance spent per 1,000 CDRs.
2. Recording upload through the sync link vs a raw CurveZMQ DEALER->ROUTER transfer of
   the same bytes in the same chunk size (``--chunk-kib``, by default ``sync.chunk_kib``'s),
   alone and with the receiver writing, hashing and fsyncing, each measured just before
   and just after the upload in the same round (their combined rate is the round's
   limit); with the CPU per MiB and the wake-ups (voluntary context switches of all
   threads) per chunk of the aggregator and the appliance.
3. Report latency over a generated table: daily summary by site for a month, a
   filtered CDR search page, and a month's totals per extension.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator import reports
from aggregator.store.cdr_rows import CdrRow, cdr_row
from aggregator.store.db import create_engine
from aggregator.store.partitions import COVERAGE, Month, create_months
from aggregator.store.schema import cdr_rollup, cdr_rollup_daily, cdrs, metadata
from appliance.settings import SyncSettings
from appliance.store import Outbox, Store
from appliance.sync.recordings import register_recording
from bench import harness
from drivers.sync import keys
from tests.pg import postgres_server
from tests.procs import Service
from tests.sync_env import make_cdr, make_env

START_S = 60  # a service up and healthy, or the first CDR or chunk arriving
MIN_CDRS_PER_S = 1_000  # slower than this, the CDR sync counts as stuck
MIN_BYTES_PER_S = 2_000_000  # slower than this, an upload counts as stuck
POLL_MIN_S, POLL_MAX_S = 0.02, 0.5  # bounds of the wait between polls of the outbox


def raw_insert_rates(url: str, n: int, batch: int = 5000) -> dict[str, float]:
    """The database's own batched inserts of the same rows, ``batch`` rows per commit.

    SQLite: the driver's executemany, and multi-row VALUES statements (as many rows as
    SQLite's 32,766 bound values allow); PostgreSQL: SQLAlchemy Core, which sends
    multi-row VALUES, plain ``COPY`` into the CDR table, and ``COPY`` into a temporary
    table followed by ``INSERT ... ON CONFLICT DO NOTHING`` (the dedupe ingest needs).
    """
    engine = create_engine(url)
    rows = [cdr_row("raw-site", make_cdr(i), 0) for i in range(n)]
    methods = _RAW_SQLITE if engine.dialect.name == "sqlite" else _RAW_POSTGRES
    COVERAGE.ensure(engine, [row.started_ms for row in rows])  # raw COPY makes no partition
    rates = {}
    for name, insert_rows in methods.items():
        with engine.begin() as conn:
            conn.execute(cdrs.delete())
        start = time.perf_counter()
        for first in range(0, n, batch):
            with engine.begin() as conn:
                insert_rows(conn, rows[first : first + batch])
        rates[name] = n / (time.perf_counter() - start)
    engine.dispose()
    return rates


_COLUMNS = [c.name for c in cdrs.columns if c.name != "id"]
_ONE_ROW = f"({','.join('?' * len(_COLUMNS))})"
_INSERT = f"INSERT INTO cdrs ({','.join(_COLUMNS)}) VALUES "  # noqa: S608
_ROWS_PER_STATEMENT = 32_766 // len(_COLUMNS)


def _executemany(conn: sa.Connection, rows: list[CdrRow]) -> None:
    conn.exec_driver_sql(_INSERT + _ONE_ROW, rows)


def _multi_row(conn: sa.Connection, rows: list[CdrRow]) -> None:
    for first in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[first : first + _ROWS_PER_STATEMENT]
        params = tuple(v for row in chunk for v in row)
        conn.exec_driver_sql(_INSERT + ",".join([_ONE_ROW] * len(chunk)), params)


def _core(conn: sa.Connection, rows: list[CdrRow]) -> None:
    conn.execute(cdrs.insert(), [row._asdict() for row in rows])


def _copy_into(conn: sa.Connection, table: str, rows: list[CdrRow]) -> None:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(f"COPY {table} ({','.join(_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _copy(conn: sa.Connection, rows: list[CdrRow]) -> None:
    _copy_into(conn, "cdrs", rows)


def _copy_dedupe(conn: sa.Connection, rows: list[CdrRow]) -> None:
    columns = ",".join(_COLUMNS)
    conn.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS raw_staging ON COMMIT DELETE ROWS AS "  # noqa: S608
        f"SELECT {columns} FROM cdrs WITH NO DATA"
    )
    _copy_into(conn, "raw_staging", rows)
    conn.exec_driver_sql(
        f"INSERT INTO cdrs ({columns}) SELECT {columns} FROM raw_staging "  # noqa: S608
        "ON CONFLICT (site_id, cdr_id, started_ms) DO NOTHING"
    )


_RAW_SQLITE = {"driver executemany": _executemany, "driver multi-row VALUES": _multi_row}
_RAW_POSTGRES = {
    "Core multi-row VALUES": _core,
    "COPY": _copy,
    "COPY + ON CONFLICT dedupe": _copy_dedupe,
}


@dataclass(frozen=True)
class SyncRun:
    """One end-to-end CDR sync: its rate and the CPU each process spent per 1,000 CDRs."""

    rate: float
    hq_ms: float
    appliance_ms: float


def cpu_s(pid: int) -> float:
    """User and system CPU seconds a live process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sync_rate(root: Path, url: str | None, n: int) -> SyncRun:
    if url is not None:
        # Each round starts from an empty database, as it does with its own SQLite file.
        engine = create_engine(url)
        metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE alembic_version")
        engine.dispose()
    env = make_env(root, db_url=url)
    env.prefill(n)
    os.sync()  # the outbox's own writeback is setup, not part of the sync
    with ExitStack() as stack:
        agg = Service(["aggregator", "run", "-c", str(env.agg_config)], root / "agg.log")
        stack.callback(agg.close)
        agg.wait_healthy(f"{env.agg_url}/healthz", harness.limit(START_S))
        app = Service(["appliance", "run", "-c", str(env.app_config)], root / "app.log")
        stack.callback(app.close)
        http = stack.enter_context(httpx.Client(timeout=10))
        harness.wait_until(lambda: env.ingested(http) > 0, START_S, "first CDRs", interval=0.005)
        start, base = time.perf_counter(), env.ingested(http)
        cpu_before = cpu_s(agg.proc.pid), cpu_s(app.proc.pid)
        if base > n // 2:
            raise harness.Incomplete(
                f"{base:,} of {n:,} CDRs were stored before the first reading: too few to time"
            )
        try:
            wait_drained(lambda: env.pending(http), n, start)
        except harness.Incomplete:
            done = env.ingested(http) - base
            rate = done / (time.perf_counter() - start)
            harness.record("CDR sync when stopped", f"{done:,} of {n:,} CDRs at {rate:,.0f}/s")
            raise
        rate = (n - base) / (time.perf_counter() - start)
        hq, appliance = (cpu_s(p.proc.pid) - c for p, c in zip((agg, app), cpu_before, strict=True))
        return SyncRun(rate, hq * 1e6 / (n - base), appliance * 1e6 / (n - base))


def wait_drained(pending: Callable[[], int], n: int, start: float) -> None:
    """Wait until ``pending()`` is 0, polling about ten times over the expected drain.

    Each poll renders the appliance's /metrics, which costs it milliseconds of the CPU
    the sync itself needs; polling every 20 ms took a tenth of a core from the sync. The
    wait before the next poll is a quarter of the time the outbox needs at the rate so
    far, between 20 ms and 0.5 s, so the end is still seen within 20 ms.
    """
    deadline = time.monotonic() + harness.limit(n / MIN_CDRS_PER_S)
    while (left := pending()) > 0:
        if time.monotonic() > deadline:
            raise harness.Incomplete(f"outbox drained: {left:,} CDRs left")
        elapsed = time.perf_counter() - start
        rate = max(n - left, 1) / max(elapsed, 1e-3)
        time.sleep(min(max(left / rate / 4, POLL_MIN_S), POLL_MAX_S))


@dataclass(frozen=True)
class ProcessCost:
    """What one process spent on an upload: CPU per MiB and wake-ups per chunk.

    Wake-ups are the voluntary context switches of all its threads: each is a thread
    that went to sleep waiting (for the GIL, a queue, the socket or the disk), so per
    chunk they count the hand-offs between threads.
    """

    cpu_ms_per_mib: float
    wakeups_per_chunk: float

    def __str__(self) -> str:
        return f"{self.cpu_ms_per_mib:.2f} ms CPU/MiB, {self.wakeups_per_chunk:.1f} wake-ups/chunk"


@dataclass(frozen=True)
class UploadRun:
    """One upload round: our rate, the raw limits measured around it, each process's cost."""

    rate: float
    limits: dict[str, float]
    hq: ProcessCost
    appliance: ProcessCost


def thread_counters(pid: int) -> tuple[float, int]:
    """CPU seconds and voluntary context switches of all threads of a live process."""
    cpu, switches = 0.0, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            status = (task / "status").read_text()
        except OSError:
            continue  # the thread ended between the listing and the read
        fields = stat.rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        switches += int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return cpu, switches


def _cost(
    before: tuple[float, int], after: tuple[float, int], size: int, chunks: int
) -> ProcessCost:
    return ProcessCost(
        (after[0] - before[0]) * 1000 / (size / 2**20), (after[1] - before[1]) / chunks
    )


def upload_rate(root: Path, size: int, chunk_kib: int) -> UploadRun:
    """Raw CurveZMQ, our upload, raw CurveZMQ again: the raw runs' mean is the limit."""
    before = raw_limits(root / "raw-before", size, chunk_kib * 1024)
    ours, hq, appliance = _upload(root, size, chunk_kib)
    after = raw_limits(root / "raw-after", size, chunk_kib * 1024)
    return UploadRun(ours, _mean_rates(before, after), hq, appliance)


def raw_limits(root: Path, size: int, chunk: int) -> dict[str, float]:
    """The raw transfers of ``size`` bytes: CurveZMQ alone, and with write, sha256 and fsync."""
    return {
        "raw CurveZMQ": raw_zmq_rate(root, size, chunk),
        "raw + write + sha256 + fsync": raw_zmq_rate(root, size, chunk, to_disk=True),
    }


def _upload(root: Path, size: int, chunk_kib: int) -> tuple[float, ProcessCost, ProcessCost]:
    """One recording through real aggregator and appliance processes, with their costs."""
    env = make_env(root, chunk_kib=chunk_kib)
    wav = root / "rec.wav"
    wav.write_bytes(os.urandom(size))
    store = Store.open(root / "app" / "store")
    register_recording(Outbox(store, "recording"), "rec-bench", wav, {})
    store.close()
    os.sync()  # the test file's own writeback is setup, not part of the upload
    stored = root / "agg" / "recordings"
    chunks = -(-size // (chunk_kib * 1024))
    with ExitStack() as stack:
        agg = Service(["aggregator", "run", "-c", str(env.agg_config)], root / "agg.log")
        stack.callback(agg.close)
        agg.wait_healthy(f"{env.agg_url}/healthz", harness.limit(START_S))
        app = Service(["appliance", "run", "-c", str(env.app_config)], root / "app.log")
        stack.callback(app.close)
        incoming = stored / "incoming" / env.site_id / "rec-bench.part"
        harness.wait_until(incoming.exists, START_S, "upload start", interval=0.002)
        start = time.perf_counter()
        hq0, app0 = thread_counters(agg.proc.pid), thread_counters(app.proc.pid)
        harness.wait_until(
            lambda: not wav.exists(), size / MIN_BYTES_PER_S, "upload confirmed", 0.005
        )
        ours = size / (time.perf_counter() - start)
        hq1, app1 = thread_counters(agg.proc.pid), thread_counters(app.proc.pid)
    return ours, _cost(hq0, hq1, size, chunks), _cost(app0, app1, size, chunks)


def raw_zmq_rate(root: Path, size: int, chunk: int, to_disk: bool = False) -> float:
    server_pub, server_sec = keys.load_secret(keys.generate(root / "raw", "srv")[1])
    client_pub, client_sec = keys.load_secret(keys.generate(root / "raw", "cli")[1])
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    router.curve_server, router.curve_publickey, router.curve_secretkey = (
        True,
        server_pub,
        server_sec,
    )
    dealer.curve_publickey, dealer.curve_secretkey = client_pub, client_sec
    dealer.curve_serverkey = server_pub
    router.rcvtimeo = dealer.sndtimeo = int(harness.limit(START_S) * 1000)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    data = os.urandom(chunk)
    chunks = size // chunk
    dealer.send(b"hi")
    _receive(router, "raw CurveZMQ handshake")
    sink = (root / "raw" / "sink.bin").open("wb", buffering=0) if to_disk else None
    digest = hashlib.sha256()
    os.sync()
    # The sender runs beside the receiver, as the appliance does; zmq's high-water marks
    # hold it back when the receiver falls behind.
    sender = threading.Thread(target=_send, args=(dealer, data, chunks), daemon=True)
    start = time.perf_counter()
    sender.start()
    for _ in range(chunks):
        _, received = _receive(router, "raw CurveZMQ chunk")
        if sink is not None:
            sink.write(received)
            digest.update(received)
    if sink is not None:
        os.fsync(sink.fileno())
        sink.close()
    rate = chunks * chunk / (time.perf_counter() - start)
    sender.join(harness.limit(START_S))
    router.close(0)
    dealer.close(0)
    ctx.term()
    return rate


def _send(dealer: zmq.Socket[bytes], data: bytes, chunks: int) -> None:
    """Send ``chunks`` copies of ``data``; a send blocked past the socket's limit ends it."""
    with contextlib.suppress(zmq.Again):
        for _ in range(chunks):
            dealer.send(data)


def _receive(router: zmq.Socket[bytes], what: str) -> list[bytes]:
    """One message, within the socket's receive limit."""
    try:
        return router.recv_multipart()
    except zmq.Again:
        raise harness.Incomplete(f"{what}: nothing within {router.rcvtimeo / 1000:.1f} s") from None


MONTH_START_MS = 1_761_955_200_000  # 2025-11-01T00:00:00Z

# Generated CDRs: site i % sites, one caller, 50 extensions, 4 trunks, 100,000 callee
# numbers, start times spread at random over the 30 days after MONTH_START_MS.
_SEED_COLUMNS = (
    "site_id, cdr_id, direction, caller_number, caller_extension, callee_extension, "
    "callee_number, trunk, started_ms, duration_s, billable_s, disposition, doc, received_ms"
)
_SEED_SELECT = {
    "postgresql": """
        SELECT 'site-' || mod(i, {sites}), lpad(to_hex(i), 32, '0'), 'out', '+4930100',
               '1' || lpad(mod(i, 50)::text, 3, '0'), '',
               '+49170' || lpad(floor(random() * 100000)::int::text, 5, '0'), 't' || mod(i, 4),
               {start} + floor(random() * 30 * 86400000)::bigint, 60, 50, 'answered', '', 0
        FROM generate_series(0, {n} - 1) AS i""",
    "sqlite": """
        WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < {n} - 1)
        SELECT 'site-' || (i % {sites}), printf('%032x', i), 'out', '+4930100',
               printf('1%03d', i % 50), '', printf('+49170%05d', abs(random()) % 100000),
               't' || (i % 4), {start} + abs(random()) % (30 * 86400000), 60, 50, 'answered',
               x'', 0
        FROM seq""",
}
# The rollups ingest would have kept for those CDRs (see aggregator.store.cdr_rows): per
# site and hour, for the site, each caller extension and each trunk.
_SEED_ROLLUP = "INSERT INTO cdr_rollup " + " UNION ALL ".join(  # noqa: S608
    f"""SELECT site_id, started_ms / 3600000 * 3600000, '{dim}', {key}, count(*),
               sum(CASE WHEN disposition = 'answered' THEN 1 ELSE 0 END),
               sum(duration_s), sum(billable_s)
        FROM cdrs WHERE {where} GROUP BY 1, 2, 3, 4"""  # noqa: S608
    for dim, key, where in (
        ("site", "''", "1 = 1"),
        ("extension", "caller_extension", "caller_extension <> ''"),
        ("trunk", "trunk", "trunk <> ''"),
    )
)
# And per UTC day, from the hours.
_SEED_ROLLUP_DAILY = """INSERT INTO cdr_rollup_daily
    SELECT site_id, hour_ms / 86400000 * 86400000, dim, key, sum(calls), sum(answered),
           sum(duration_s), sum(billable_s)
    FROM cdr_rollup GROUP BY 1, 2, 3, 4"""


def seed_cdrs(engine: sa.Engine, n: int, sites: int) -> None:
    """Fill the CDR table and its rollups with ``n`` generated CDRs (setup, not measured).

    The rows are generated inside the database in one statement, with the secondary
    indexes dropped while it runs and built afterwards, as a bulk load would.
    """
    dialect = engine.dialect.name
    select = _SEED_SELECT[dialect].format(n=n, sites=sites, start=MONTH_START_MS)
    with engine.begin() as conn:
        if dialect == "postgresql":
            create_months(conn, [Month.of(MONTH_START_MS), Month.of(MONTH_START_MS).plus(1)])
        conn.execute(cdr_rollup.delete())
        conn.execute(cdr_rollup_daily.delete())
        conn.execute(cdrs.delete())
        for index in cdrs.indexes:
            index.drop(conn)
        conn.exec_driver_sql(f"INSERT INTO cdrs ({_SEED_COLUMNS}) {select}")
        for index in cdrs.indexes:
            index.create(conn)
        conn.exec_driver_sql(_SEED_ROLLUP)
        conn.exec_driver_sql(_SEED_ROLLUP_DAILY)
    if dialect == "postgresql":
        # What autovacuum would do by itself a moment after such a load.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")


def report_latency(
    url: str, n: int, sites: int = 20, rounds: int = 5
) -> tuple[float, float, float]:
    """Median latency (ms) of the month summary, of a filtered search page and of the
    month's totals per extension."""
    engine = create_engine(url)
    seed_cdrs(engine, n, sites)
    zone = reports.zone("Europe/Berlin")
    span = (reports.parse_time("2025-11-01", zone), reports.parse_time("2025-12-01", zone))
    by_number = reports.CdrFilter(
        sites=frozenset({"site-3"}), start_ms=span[0], end_ms=span[1], number="+4917000042"
    )
    by_site = reports.CdrFilter(sites=frozenset({"site-3"}), start_ms=span[0], end_ms=span[1])
    summaries, searches, extensions = [], [], []
    with engine.connect() as conn:
        for _ in range(rounds):
            start = time.perf_counter()
            rows = reports.summary(conn, None, *span, zone, "day")
            summaries.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            reports.search_cdrs(conn, by_number, zone, 100, None)
            reports.search_cdrs(conn, by_site, zone, 100, None)
            searches.append((time.perf_counter() - start) * 1000 / 2)
            start = time.perf_counter()
            per_extension = reports.by_key(conn, "extension", None, *span)
            extensions.append((time.perf_counter() - start) * 1000)
    assert len(rows) >= sites * 30
    assert per_extension
    engine.dispose()
    return statistics.median(summaries), statistics.median(searches), statistics.median(extensions)


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--cdrs", type=int, default=200_000)
    parser.add_argument("--report-cdrs", type=int, default=10_000_000)
    parser.add_argument("--upload-mb", type=int, default=200)
    parser.add_argument(
        "--chunk-kib",
        type=int,
        default=SyncSettings.model_fields["chunk_kib"].default,
        help="recording chunk size (default: sync.chunk_kib's)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each sync measure")
    parser.add_argument("--postgres", action="store_true", help="also run against PostgreSQL")
    parser.add_argument("--skip-reports", action="store_true")
    parser.add_argument(
        "--skip-sync", action="store_true", help="only the reports (measure 3), e.g. at 100M"
    )
    parser.add_argument(
        "--skip-sqlite", action="store_true", help="measure PostgreSQL only (with --postgres)"
    )
    harness.run(measure, parser.parse_args())


def measure(args: argparse.Namespace) -> None:
    with ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="callmesh-bench-")))
        targets = [] if args.skip_sqlite else [("sqlite", f"sqlite:///{base / 'raw.db'}", None)]
        if args.postgres:
            pg = stack.enter_context(postgres_server())
            targets.append(("postgresql", pg, pg))
        if not args.skip_sync:
            for name, raw_url, agg_url in targets:
                cdr_rounds = []
                for i in range(args.rounds):
                    run_dir = base / f"sync-{name}-{i}"
                    cdr_rounds.append(
                        cdr_round(f"{name} round {i + 1}", raw_url, agg_url, run_dir, args.cdrs)
                    )
                _summarise(f"CDR sync {name}", cdr_rounds, "/s", 1)
            upload_measures(args, base)
        if not args.skip_reports:
            for name, url, _ in targets:
                url = url if name != "sqlite" else f"sqlite:///{base / 'reports.db'}"
                report_measures(name, url, args.report_cdrs)


def upload_measures(args: argparse.Namespace, base: Path) -> None:
    """``--rounds`` recording uploads against raw CurveZMQ, printed and recorded."""
    size = args.upload_mb * 1024 * 1024
    upload_rounds = []
    for i in range(args.rounds):
        run = upload_rate(base / f"upload-{i}", size, args.chunk_kib)
        shutil.rmtree(base / f"upload-{i}")
        rate, limits = run.rate, run.limits
        upload_rounds.append((rate, limits))
        harness.record(f"upload round {i + 1}", f"{rate / 1e6:,.1f} MB/s vs {limits}")
        zmq_rate, disk_rate = limits["raw CurveZMQ"], limits["raw + write + sha256 + fsync"]
        print(
            f"recording upload, {args.upload_mb} MB in {args.chunk_kib} KiB chunks: "
            f"{rate / 1e6:,.1f} MB/s vs raw CurveZMQ {zmq_rate / 1e6:,.1f} MB/s (ratio "
            f"{rate / zmq_rate:.2f}), vs raw CurveZMQ + write + sha256 + fsync "
            f"{disk_rate / 1e6:,.1f} MB/s (ratio {rate / disk_rate:.2f}); "
            f"HQ {run.hq}, appliance {run.appliance}"
        )
    _summarise("recording upload", upload_rounds, " MB/s", 1e6)


def report_measures(name: str, url: str, n: int) -> None:
    """Report latencies over ``n`` generated CDRs, printed and recorded."""
    summary_ms, search_ms, extension_ms = report_latency(url, n)
    print(
        f"reports {name} over {n:,} CDRs, median of 5: month summary "
        f"by site/day {summary_ms:.1f} ms, filtered search page {search_ms:.1f} ms, "
        f"month by extension {extension_ms:.1f} ms"
    )
    harness.record(
        f"reports {name}", f"{summary_ms:.1f} ms, {search_ms:.1f} ms, {extension_ms:.1f} ms"
    )


def cdr_round(
    what: str, raw_url: str, agg_url: str | None, root: Path, n: int
) -> tuple[float, dict[str, float]]:
    """One round: raw inserts, the end-to-end sync, raw inserts again; printed and recorded."""
    before = raw_insert_rates(raw_url, n)
    run = sync_rate(root, agg_url, n)
    raw = _mean_rates(before, raw_insert_rates(raw_url, n))
    versus = ", ".join(f"{r:,.0f}/s {m} (ratio {run.rate / r:.2f})" for m, r in raw.items())
    cpu = f"CPU per 1,000 CDRs: HQ {run.hq_ms:.0f} ms, appliance {run.appliance_ms:.0f} ms"
    print(f"CDR sync {what}, {n:,} CDRs: {run.rate:,.0f}/s end to end vs {versus}\n  {cpu}")
    harness.record(f"CDR sync {what}", f"{run.rate:,.0f}/s vs {versus}; {cpu}")
    return run.rate, raw


def _mean_rates(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per method, the time-weighted mean of two rates (the rate of both runs together).

    The raw rates are measured just before and just after the end-to-end run, so a
    change of load on a shared machine during the round weighs on both sides alike.
    """
    return {m: 2 / (1 / before[m] + 1 / after[m]) for m in before}


def _summarise(
    what: str, rounds: list[tuple[float, dict[str, float]]], unit: str, scale: float
) -> None:
    """Best and median of our rate and of each ratio over the rounds."""
    ours = [o for o, _ in rounds]
    parts = [
        f"best {max(ours) / scale:,.0f}{unit}, median {statistics.median(ours) / scale:,.0f}{unit}"
    ]
    for method in rounds[0][1]:
        ratios = [o / raw[method] for o, raw in rounds]
        parts.append(
            f"ratio to {method} best {max(ratios):.2f}, median {statistics.median(ratios):.2f}"
        )
    print(f"{what} over {len(rounds)} rounds: " + "; ".join(parts))


if __name__ == "__main__":
    main()
