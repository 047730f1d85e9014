"""A day of many sites' CDR traffic replayed against one aggregator node on PostgreSQL.

The scaling is stated, never hidden: ``--sites`` simulated sites each send the CDRs of
``--day-fraction`` of a day at ``--cdrs-per-site-day`` CDRs a day, the calls of each site
spread over that slice of the day. A site's outbox is nearly empty when it runs normally,
so each CDR travels in a batch of ``--batch`` records (1 by default) on the site's own
CurveZMQ session, ``sync.window`` (4) batches in flight, as the appliance sends them. The
sessions are multiplexed over ``--processes`` sender processes. The replay is compressed in
time: every site sends as fast as HQ acknowledges, so the run measures what one node can
take, not what a day asks of it.

Measured: the node's CDR and message rate, CPU of the node and of PostgreSQL per 1,000
CDRs (so what saturates first), WAL bytes and database growth per CDR; recording storage
is computed from the WAV format (two channels, 16 bit, 8 kHz) and ``--recorded-share``.
Then the figures are scaled to ``--target-sites`` (10,000) for a day and a year.

    bench/bench_day.py --sites 1000 --day-fraction 0.01 --processes 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import yaml
import zmq

from bench import harness
from drivers.sync import keys
from drivers.sync.protocol import Ack, CdrBatch, Hello, Welcome, decode, encode
from tests.pg import postgres_server
from tests.procs import Service, free_port
from tests.sync_env import T0, make_cdr

DAY_S = 86_400
WINDOW = 4
WAV_BYTES_PER_MIN = 8000 * 2 * 2 * 60  # drivers/sip/recording.py: two channels, 16 bit, 8 kHz
REPLY_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class Plan:
    """What each simulated site sends."""

    cdrs_per_site: int
    batch: int
    span_s: float


@dataclass(frozen=True)
class Node:
    ingest: str
    http_port: int
    server_key: bytes


def site_cdrs(site: int, plan: Plan) -> list[bytes]:
    """The site's CDRs, their calls spread evenly over the day's slice."""
    step = plan.span_s / max(plan.cdrs_per_site, 1)
    docs = []
    for n in range(plan.cdrs_per_site):
        start = T0 + (site % 97) + n * step
        docs.append(make_cdr(n, start=start, answer=start + 5, end=start + 185))
    return docs


@dataclass(frozen=True)
class Site:
    """One simulated site: its keypair and its ``sync.endpoints`` (it connects to the first)."""

    index: int
    public: bytes
    secret: bytes
    endpoints: tuple[str, ...]


class Replay:
    """In a sender process: the sessions of its sites, their queued batches and those in flight."""

    def __init__(self, server_key: bytes, sites: list[Site], plan: Plan) -> None:
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._poller = zmq.Poller()
        self._queues: dict[zmq.Socket[bytes], list[list[tuple[int, bytes]]]] = {}
        self._in_flight: dict[zmq.Socket[bytes], int] = {}
        for site in sites:
            sock = self._ctx.socket(zmq.DEALER)
            sock.curve_publickey, sock.curve_secretkey = site.public, site.secret
            sock.curve_serverkey, sock.linger = server_key, 0
            sock.connect(site.endpoints[0])
            docs = list(enumerate(site_cdrs(site.index, plan), start=1))
            self._queues[sock] = [docs[i : i + plan.batch] for i in range(0, len(docs), plan.batch)]
            self._in_flight[sock] = 0
            self._poller.register(sock, zmq.POLLIN)
            sock.send_multipart(encode(Hello(f"site-{site.index:05d}", "bench", [], {}, {})))

    def welcomed(self) -> int:
        """Wait for every session's ``welcome``; how many came within the reply timeout."""
        waiting = set(self._queues)
        while waiting:
            ready = dict(self._poller.poll(REPLY_TIMEOUT_MS))
            if not ready:
                break
            for sock in ready:
                if isinstance(decode(sock.recv_multipart()), Welcome):
                    waiting.discard(sock)
        return len(self._queues) - len(waiting)

    def send(self) -> int:
        """Every site's CDRs, ``WINDOW`` batches in flight per site; the CDRs acknowledged."""
        acked = 0
        for sock in self._queues:
            self._top_up(sock)
        while any(self._in_flight.values()):
            ready = dict(self._poller.poll(REPLY_TIMEOUT_MS))
            if not ready:
                break
            for sock in ready:
                message = decode(sock.recv_multipart())
                if isinstance(message, Ack) and message.stream == "cdr":
                    acked += len(message.seqs)
                    self._in_flight[sock] -= 1
                    self._top_up(sock)
        return acked

    def close(self) -> None:
        for sock in self._queues:
            sock.close(0)
        self._ctx.term()

    def _top_up(self, sock: zmq.Socket[bytes]) -> None:
        queue = self._queues[sock]
        while self._in_flight[sock] < WINDOW and queue:
            sock.send_multipart(encode(CdrBatch(queue.pop(0))))
            self._in_flight[sock] += 1


def replay(node: Node, sites: list[Site], plan: Plan) -> int:
    """In a sender process: every site's hello, then its CDRs; the CDRs acknowledged."""
    sender = Replay(node.server_key, sites, plan)
    try:
        sender.welcomed()
        return sender.send()
    finally:
        sender.close()


def _replay_args(args: tuple[Node, list[Site], Plan]) -> int:
    return replay(*args)


def cpu_s(pid: int) -> float:
    """User and system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu(parent: int) -> dict[int, float]:
    """CPU seconds of each live child of ``parent`` (PostgreSQL's backends and workers)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def postmaster(engine: sa.Engine) -> int:
    """The PostgreSQL server's process id (the parent of the backend serving us)."""
    with engine.connect() as conn:
        backend = int(conn.scalar(sa.text("SELECT pg_backend_pid()")) or 0)
    return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])


@dataclass(frozen=True)
class DbState:
    wal_lsn: str
    db_bytes: int
    cdr_bytes: int
    rollup_bytes: int


def db_state(engine: sa.Engine) -> DbState:
    with engine.connect() as conn:
        lsn = str(conn.scalar(sa.text("SELECT pg_current_wal_lsn()")))
        size = int(conn.scalar(sa.text("SELECT pg_database_size(current_database())")) or 0)
        parts = sa.text(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
            "WHERE inhparent = 'cdrs'::regclass"
        )
        cdr = int(conn.scalar(parts) or 0)
        rollups = sa.text(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "WHERE c.relname IN ('cdr_rollup', 'cdr_rollup_daily') AND c.relkind = 'r'"
        )
        rollup = int(conn.scalar(rollups) or 0)
    return DbState(lsn, size, cdr, rollup)


def wal_bytes(engine: sa.Engine, since: str) -> int:
    with engine.connect() as conn:
        query = sa.text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), CAST(:lsn AS pg_lsn))")
        return int(conn.scalar(query, {"lsn": since}) or 0)


def start_node(root: Path, db_url: str, site_keys: list[bytes]) -> tuple[Service, Node]:
    public, _ = keys.generate(root / "agg" / "keys", "aggregator")
    port, ingest = free_port(), f"tcp://127.0.0.1:{free_port()}"
    admitted = [
        {"site_id": f"site-{i:05d}", "public_key": k.decode()} for i, k in enumerate(site_keys)
    ]
    config = {
        "data_dir": str(root / "agg"),
        "http": {"port": port},
        "database": {"url": db_url},
        "ingest": {"bind": ingest, "sites": admitted},
    }
    path = root / "aggregator.yaml"
    path.write_text(yaml.safe_dump(config))
    agg = Service(["aggregator", "run", "-c", str(path)], root / "agg.log")
    agg.wait_healthy(f"http://127.0.0.1:{port}/healthz", timeout=harness.limit(120))
    return agg, Node(ingest, port, keys.load_public(public))


def run(args: argparse.Namespace, root: Path, db_url: str) -> None:
    plan = Plan(round(args.cdrs_per_site_day * args.day_fraction), args.batch,
                DAY_S * args.day_fraction)  # fmt: skip
    pairs = [zmq.curve_keypair() for _ in range(args.sites)]
    agg, node = start_node(root, db_url, [public for public, _ in pairs])
    engine = sa.create_engine(db_url)
    try:
        sites = [
            Site(i, public, secret, (node.ingest,)) for i, (public, secret) in enumerate(pairs)
        ]
        slices = [(node, sites[p :: args.processes], plan) for p in range(args.processes)]
        pg = postmaster(engine)
        before, pg_before, hq_before = db_state(engine), children_cpu(pg), cpu_s(agg.proc.pid)
        start = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(args.processes) as pool:
            acked = sum(pool.map(_replay_args, slices))
        took = time.perf_counter() - start
        hq = cpu_s(agg.proc.pid) - hq_before
        pg_after = children_cpu(pg)
        pg_cpu = sum(v - pg_before.get(pid, 0.0) for pid, v in pg_after.items())
        wal = wal_bytes(engine, before.wal_lsn)
        after = db_state(engine)
    finally:
        engine.dispose()
        agg.close()
    report(args, plan, Measured(acked, took, hq, pg_cpu, wal, before, after))


@dataclass(frozen=True)
class Measured:
    cdrs: int
    seconds: float
    hq_cpu_s: float
    pg_cpu_s: float
    wal_bytes: int
    before: DbState
    after: DbState


def report(args: argparse.Namespace, plan: Plan, m: Measured) -> None:
    expected = args.sites * plan.cdrs_per_site
    if m.cdrs != expected:
        raise harness.Incomplete(f"{m.cdrs:,} of {expected:,} CDRs acknowledged")
    rate, messages = m.cdrs / m.seconds, m.cdrs / plan.batch / m.seconds
    per_cdr = {
        "WAL": m.wal_bytes / m.cdrs,
        "database": (m.after.db_bytes - m.before.db_bytes) / m.cdrs,
        "CDR partitions": (m.after.cdr_bytes - m.before.cdr_bytes) / m.cdrs,
        "rollups": (m.after.rollup_bytes - m.before.rollup_bytes) / m.cdrs,
    }
    hq_ms, pg_ms = m.hq_cpu_s * 1e6 / m.cdrs, m.pg_cpu_s * 1e6 / m.cdrs
    print(f"scale: {args.sites:,} sites x {args.day_fraction} of a day x "
          f"{args.cdrs_per_site_day:,} CDRs/site/day = {m.cdrs:,} CDRs, batches of {plan.batch}, "
          f"{args.processes} sender processes")  # fmt: skip
    print(f"node: {rate:,.0f} CDR/s, {messages:,.0f} batches/s over {m.seconds:.1f} s")
    busy = f"node {m.hq_cpu_s / m.seconds:.0%} of a core, PostgreSQL {m.pg_cpu_s / m.seconds:.0%}"
    print(f"CPU per 1,000 CDRs: node {hq_ms:.0f} ms, PostgreSQL {pg_ms:.0f} ms ({busy})")
    print("bytes per CDR: " + ", ".join(f"{k} {v:,.0f}" for k, v in per_cdr.items()))
    harness.record("node rate", f"{rate:,.0f} CDR/s, {messages:,.0f} batches/s")
    harness.record("CPU per 1,000 CDRs", f"node {hq_ms:.0f} ms, PostgreSQL {pg_ms:.0f} ms")
    harness.record("bytes per CDR", str({k: round(v) for k, v in per_cdr.items()}))
    extrapolate(args, rate, hq_ms, pg_ms, per_cdr)


def extrapolate(
    args: argparse.Namespace, rate: float, hq_ms: float, pg_ms: float, per_cdr: dict[str, float]
) -> None:
    """The measured figures scaled linearly to ``--target-sites`` for a day and a year."""
    day = args.target_sites * args.cdrs_per_site_day
    peak = day * args.busy_share / (args.busy_hours * 3600) * args.peak_factor
    recorded = day * args.recorded_share * args.call_minutes * WAV_BYTES_PER_MIN
    # Cores from CPU per CDR, not from this run's rate: on a shared machine the rate is
    # what the node's share of the cores allowed.
    print(f"{args.target_sites:,} sites: {day:,} CDRs a day, peak {peak:,.0f} CDR/s: node CPU "
          f"{peak * hq_ms / 1e6:.2f} cores, PostgreSQL CPU {peak * pg_ms / 1e6:.2f} cores "
          f"(this run: {rate:,.0f} CDR/s on one node)")  # fmt: skip
    year = day * 365
    print(f"  a year: WAL {year * per_cdr['WAL'] / 1e12:.1f} TB, database growth "
          f"{year * per_cdr['database'] / 1e12:.1f} TB (CDR partitions "
          f"{year * per_cdr['CDR partitions'] / 1e12:.1f} TB), recordings "
          f"{recorded * 365 / 1e15:.2f} PB ({recorded / 1e12:.1f} TB a day)")  # fmt: skip


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1000, help="simulated sites")
    parser.add_argument("--day-fraction", type=float, default=0.01, help="slice of a day sent")
    parser.add_argument("--cdrs-per-site-day", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1, help="CDRs per batch")
    parser.add_argument("--processes", type=int, default=2, help="sender processes")
    parser.add_argument("--target-sites", type=int, default=10_000)
    parser.add_argument("--busy-share", type=float, default=0.8, help="of a day's CDRs")
    parser.add_argument("--busy-hours", type=float, default=10)
    parser.add_argument("--peak-factor", type=float, default=10, help="peak over busy mean")
    parser.add_argument("--recorded-share", type=float, default=0.2, help="of calls recorded")
    parser.add_argument("--call-minutes", type=float, default=3.0, help="mean recorded call")
    harness.run(measure, parser.parse_args())


def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-day-") as tmp, postgres_server() as url:
        run(args, Path(tmp), url)


if __name__ == "__main__":
    main()
