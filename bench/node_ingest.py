"""Three aggregator nodes against one on CDR ingest, one PostgreSQL (``bench_nodes.py --nodes``).

Theory of operation: each run gets a new database on one throwaway PostgreSQL server and
starts N ``aggregator run`` processes on it, sharing one data directory and server
keypair as docs/scale.md asks. Every simulated site has its own CurveZMQ session and
site key and lists all N nodes in ``sync.endpoints``, rotated the way docs/scale.md
spreads sites (site *k* starts at node *k* mod N); it connects to the first. The sender
processes open every session and wait for each ``welcome`` before the clock starts, so
handshakes are outside the figures; then every site sends its CDRs, ``WINDOW`` batches in
flight, as fast as its node acknowledges. Measured per run: CDRs acknowledged per second,
CPU of each node, of PostgreSQL (all its processes) and of the senders, and afterwards the
rows stored against those sent, distinct (site, CDR id) keys and the duplicates every
node counted. Node counts alternate within a round, so each ratio is taken side by side.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import httpx
import sqlalchemy as sa
import yaml
import zmq

from bench import harness
from bench.bench_day import Plan, Replay, Site, children_cpu, cpu_s, postmaster
from drivers.sync import keys
from tests.pg import fresh_database
from tests.procs import Service, free_port

NODE_START_S = 120
SEND_LIMIT_S = 900


@dataclass(frozen=True)
class Profile:
    """One traffic shape: how many sites send how many CDRs in batches of what size."""

    name: str
    sites: int
    cdrs_per_site: int
    batch: int

    @property
    def cdrs(self) -> int:
        return self.sites * self.cdrs_per_site


@dataclass(frozen=True)
class Run:
    """What one run of one profile against N nodes measured."""

    nodes: int
    acked: int
    seconds: float
    node_cpu_s: tuple[float, ...]
    node_cdrs: tuple[int, ...]
    pg_cpu_s: float
    sender_cpu_s: float
    rows: int
    distinct: int
    duplicates: int

    @property
    def rate(self) -> float:
        return self.acked / self.seconds

    def per_cdr_us(self, cpu_s: float) -> float:
        return cpu_s * 1e6 / max(self.acked, 1)


def spread(endpoints: list[str], index: int) -> tuple[str, ...]:
    """Site ``index``'s ``sync.endpoints``: every node, starting at node ``index`` mod N."""
    first = index % len(endpoints)
    return (*endpoints[first:], *endpoints[:first])


@dataclass(frozen=True)
class Nodes:
    """N running aggregator nodes sharing one database, data directory and keypair."""

    services: list[Service]
    ingests: list[str]
    http_ports: list[int]
    server_key: bytes


@contextmanager
def started_nodes(root: Path, db_url: str, site_keys: list[bytes], count: int) -> Iterator[Nodes]:
    """Start ``count`` nodes at once and wait until each is healthy; stop them all after."""
    public, _ = keys.generate(root / "agg" / "keys", "aggregator")
    admitted = [
        {"site_id": f"site-{i:05d}", "public_key": k.decode()} for i, k in enumerate(site_keys)
    ]
    ports = [free_port() for _ in range(count)]
    ingests = [f"tcp://127.0.0.1:{free_port()}" for _ in range(count)]
    services = []
    try:
        for n in range(count):
            config = {
                "data_dir": str(root / "agg"),
                "http": {"port": ports[n]},
                "database": {"url": db_url},
                "ingest": {"bind": ingests[n], "sites": admitted},
            }
            path = root / f"aggregator-{n + 1}.yaml"
            path.write_text(yaml.safe_dump(config))
            services.append(
                Service(["aggregator", "run", "-c", str(path)], root / f"agg-{n + 1}.log")
            )
        for service, port in zip(services, ports, strict=True):
            service.wait_healthy(
                f"http://127.0.0.1:{port}/healthz", timeout=harness.limit(NODE_START_S)
            )
        yield Nodes(services, ingests, ports, keys.load_public(public))
    finally:
        for service in services:
            service.close()


def _sender(
    server_key: bytes,
    sites: list[Site],
    plan: Plan,
    sync: tuple[Barrier, EventType],
    results: Queue[tuple[int, int, float]],
) -> None:
    """A sender process: open every session, wait for the start, send; report what was acked."""
    ready, go = sync
    replay = Replay(server_key, sites, plan)
    try:
        welcomed = replay.welcomed()
        ready.wait(timeout=harness.limit(NODE_START_S))
        if not go.wait(timeout=harness.limit(NODE_START_S)):
            return
        cpu = time.process_time()
        acked = replay.send()
        results.put((welcomed, acked, time.process_time() - cpu))
    finally:
        replay.close()


def _metric_sum(port: int, name: str) -> int:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    pattern = rf"^{name}_total\{{[^}}]*\}} ([0-9.e+]+)$"
    return round(sum(float(v) for v in re.findall(pattern, text, flags=re.MULTILINE)))


def _stored(engine: sa.Engine) -> tuple[int, int]:
    """Rows in ``cdrs`` and distinct (site, CDR id) among them."""
    query = sa.text("SELECT count(*), count(DISTINCT (site_id, cdr_id)) FROM cdrs")
    with engine.connect() as conn:
        rows, distinct = conn.execute(query).one()
    return int(rows), int(distinct)


def measure_run(
    root: Path,
    db_url: str,
    pairs: list[tuple[bytes, bytes]],
    profile: Profile,
    count: int,
    processes: int,
) -> Run:
    """One profile against ``count`` nodes on the (new) database ``db_url``."""
    plan = Plan(profile.cdrs_per_site, profile.batch, 864.0)
    with started_nodes(root, db_url, [p for p, _ in pairs], count) as nodes:
        sites = [Site(i, pub, sec, spread(nodes.ingests, i)) for i, (pub, sec) in enumerate(pairs)]
        engine = sa.create_engine(db_url)
        try:
            return _timed(engine, nodes, sites, plan, processes)
        finally:
            engine.dispose()


def _timed(engine: sa.Engine, nodes: Nodes, sites: list[Site], plan: Plan, processes: int) -> Run:
    ctx = multiprocessing.get_context("fork")
    ready, go = ctx.Barrier(processes + 1), ctx.Event()
    results: Queue[tuple[int, int, float]] = ctx.Queue()
    procs = [
        ctx.Process(
            target=_sender, args=(nodes.server_key, sites[p::processes], plan, (ready, go), results)
        )
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    try:
        ready.wait(timeout=harness.limit(NODE_START_S))
        pg = postmaster(engine)
        pids = [s.proc.pid for s in nodes.services]
        node0, pg0 = [cpu_s(p) for p in pids], children_cpu(pg)
        start = time.perf_counter()
        go.set()
        done = [results.get(timeout=harness.limit(SEND_LIMIT_S)) for _ in procs]
        took = time.perf_counter() - start
        node1, pg1 = [cpu_s(p) for p in pids], children_cpu(pg)
    finally:
        for proc in procs:
            proc.join(timeout=harness.limit(30))
            if proc.is_alive():
                proc.kill()
    welcomed = sum(w for w, _, _ in done)
    if welcomed != len(sites):
        raise harness.Incomplete(f"{welcomed} of {len(sites)} sites welcomed")
    rows, distinct = _stored(engine)
    return Run(
        nodes=len(pids),
        acked=sum(a for _, a, _ in done),
        seconds=took,
        node_cpu_s=tuple(b - a for a, b in zip(node0, node1, strict=True)),
        node_cdrs=tuple(_metric_sum(p, "callmesh_cdrs_ingested") for p in nodes.http_ports),
        pg_cpu_s=sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items()),
        sender_cpu_s=sum(c for _, _, c in done),
        rows=rows,
        distinct=distinct,
        duplicates=sum(_metric_sum(p, "callmesh_cdrs_duplicate") for p in nodes.http_ports),
    )


def describe(profile: Profile, run: Run) -> str:
    """One line of a run's figures."""
    each = ", ".join(
        f"{c * 1e6 / max(n, 1):.0f} µs for {n:,}"
        for c, n in zip(run.node_cpu_s, run.node_cdrs, strict=True)
    )
    nodes_us, pg_us = run.per_cdr_us(sum(run.node_cpu_s)), run.per_cdr_us(run.pg_cpu_s)
    return (
        f"{profile.name}, {run.nodes} node(s): {run.rate:,.0f} CDR/s over {run.seconds:.1f} s; "
        f"CPU per CDR: nodes {nodes_us:.0f} µs (each node per CDR it stored: {each}), "
        f"PostgreSQL {pg_us:.0f} µs, senders {run.per_cdr_us(run.sender_cpu_s):.0f} µs; "
        f"busy: nodes {sum(run.node_cpu_s) / run.seconds:.0%} of a core, "
        f"PostgreSQL {run.pg_cpu_s / run.seconds:.0%}; "
        f"stored {run.rows:,} of {profile.cdrs:,} sent, {run.distinct:,} distinct, "
        f"{run.duplicates:,} duplicates"
    )


def check(profile: Profile, run: Run) -> None:
    """Nothing lost or doubled, and every node took its share of the sites."""
    sent = profile.cdrs
    if run.acked != sent or run.rows != sent or run.distinct != sent or run.duplicates:
        raise harness.Incomplete(
            f"{profile.name}, {run.nodes} node(s): lost or doubled: {describe(profile, run)}"
        )
    if sum(run.node_cdrs) != sent or min(run.node_cdrs) == 0:
        raise harness.Incomplete(
            f"{profile.name}, {run.nodes} node(s): CDRs per node {run.node_cdrs}"
        )


def compare(args: argparse.Namespace, root: Path, server_url: str) -> None:
    """Every profile against each node count, alternating the order round by round."""
    counts = [int(n) for n in args.nodes.split(",")]
    profiles = [
        Profile("small batches", args.small_sites, args.small_cdrs, 1),
        Profile("full batches", args.full_sites, args.full_cdrs, args.full_batch),
    ]
    ratios: dict[str, list[float]] = {p.name: [] for p in profiles}
    for round_no in range(1, args.rounds + 1):
        order = counts if round_no % 2 else counts[::-1]
        for profile in profiles:
            pairs = [zmq.curve_keypair() for _ in range(profile.sites)]
            runs = {}
            for count in order:
                where = root / f"r{round_no}-{profile.batch}-{count}"
                where.mkdir()
                with fresh_database(server_url, "nodes") as db_url:
                    run = measure_run(where, db_url, pairs, profile, count, args.processes)
                check(profile, run)
                print(f"round {round_no}, {describe(profile, run)}", flush=True)
                harness.record(
                    f"round {round_no}, {profile.name}, {count}", f"{run.rate:,.0f} CDR/s"
                )
                runs[count] = run
            ratio = runs[counts[-1]].rate / runs[counts[0]].rate
            ratios[profile.name].append(ratio)
            versus = f"{counts[-1]} against {counts[0]} node(s)"
            print(f"round {round_no}, {profile.name}: {versus} {ratio:.2f}", flush=True)
    for name, values in ratios.items():
        listed = ", ".join(f"{v:.2f}" for v in values)
        median = statistics.median(values)
        print(f"{name}: ratio {counts[-1]}/{counts[0]} median {median:.2f} ({listed})")
