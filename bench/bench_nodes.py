"""HQ cost of connected sites: memory and CPU per site session on one aggregator node.

Starts one aggregator (SQLite, or PostgreSQL with ``--postgres``) admitting ``--sites``
site keys, then connects that many CurveZMQ DEALER sessions from this process, each
sending ``hello`` and then a ``status`` every ``--status-s`` seconds (the appliance's
``sync.status_interval_s``), and reports the aggregator's resident memory and CPU time
before the sites, with them connected, and per site. Numbers feed docs/scale.md.

    bench/bench_nodes.py --sites 500 --status-s 1 --seconds 20

``--cdr-bytes N`` instead stores N synthetic CDRs (tests/sync_env.py ``make_cdr``) into
a throwaway PostgreSQL and reports the bytes per CDR of the table with its indexes.

``--nodes 1,3`` instead runs the same CDR traffic of many sites against one node and
against three sharing one PostgreSQL, alternating, ``--rounds`` times, in small batches
(one CDR each) and in full batches, and reports CDR/s, CPU per CDR at each node, at
PostgreSQL and at the senders, the ratio per round and its median (bench/node_ingest.py):

    bench/bench_nodes.py --nodes 1,3 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
import yaml
import zmq

from aggregator.store.cdrs import CdrStore
from aggregator.store.db import migrated_engine
from bench import harness, node_ingest
from drivers.sync import keys
from drivers.sync.protocol import Hello, Status, encode
from tests.pg import postgres_server
from tests.procs import Service, free_port
from tests.sync_env import make_cdr

BATCH = 5000


def _proc_stats(pid: int) -> tuple[float, float]:
    """Resident MiB and CPU seconds (user + system) of ``pid``."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = 100.0
    cpu = (int(stat[11]) + int(stat[12])) / ticks
    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * 4096 / 2**20
    return rss, cpu


def _config(root: Path, sites: list[tuple[str, bytes]], db_url: str | None) -> tuple[Path, str]:
    agg_pub, _ = keys.generate(root / "agg" / "keys", "aggregator")
    port, ingest = free_port(), f"tcp://127.0.0.1:{free_port()}"
    config = {
        "data_dir": str(root / "agg"),
        "http": {"port": port},
        "database": {"url": db_url},
        "ingest": {
            "bind": ingest,
            "sites": [{"site_id": s, "public_key": p.decode()} for s, p in sites],
        },
    }
    path = root / "aggregator.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, f"{ingest}|{port}|{keys.load_public(agg_pub).decode()}"


def _run(args: argparse.Namespace, root: Path, db_url: str | None) -> None:
    pairs = [zmq.curve_keypair() for _ in range(args.sites)]
    sites = [(f"site-{n:05d}", public) for n, (public, _) in enumerate(pairs)]
    path, where = _config(root, sites, db_url)
    ingest, port, server = where.split("|")
    agg = Service(["aggregator", "run", "-c", str(path)], root / "agg.log")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    socks: list[zmq.Socket[bytes]] = []
    try:
        agg.wait_healthy(f"http://127.0.0.1:{port}/healthz", timeout=harness.limit(60))
        time.sleep(2)
        rss0, cpu0 = _proc_stats(agg.proc.pid)
        for (site_id, _), (public, secret) in zip(sites, pairs, strict=True):
            sock = ctx.socket(zmq.DEALER)
            sock.curve_publickey, sock.curve_secretkey = public, secret
            sock.curve_serverkey = server.encode()
            sock.linger = 0
            sock.connect(ingest)
            sock.send_multipart(encode(Hello(site_id, "bench", [], {}, {})))
            socks.append(sock)
        answered = sum(1 for s in socks if s.poll(10_000))
        rss1, cpu1 = _proc_stats(agg.proc.pid)
        start, sent = time.monotonic(), 0
        while time.monotonic() - start < args.seconds:
            for sock in socks:
                sock.send_multipart(encode(Status({"backlog": {"cdr": 0}})))
                sent += 1
                with contextlib.suppress(zmq.Again):
                    while sock.recv_multipart(zmq.NOBLOCK):
                        pass
            time.sleep(args.status_s)
        took = time.monotonic() - start
        rss2, cpu2 = _proc_stats(agg.proc.pid)
    finally:
        for sock in socks:
            sock.close(0)
        ctx.term()
        agg.close()
    n = args.sites
    print(f"sites {n}, answered hello {answered}, store {'postgres' if db_url else 'sqlite'}")
    print(f"aggregator RSS idle {rss0:.1f} MiB, after hello {rss1:.1f}, with sites {rss2:.1f} MiB")
    print(f"  per site {(rss2 - rss0) * 1024 / n:.1f} KiB")
    print(f"connect + hello: {cpu1 - cpu0:.2f} CPU s, {(cpu1 - cpu0) * 1000 / n:.2f} ms per site")
    print(f"status phase: {took:.1f} s, {sent / took:.0f} status/s, {cpu2 - cpu1:.2f} CPU s")
    print(f"  {(cpu2 - cpu1) / took * 100:.1f} % of a core")
    print(f"  {(cpu2 - cpu1) * 1e6 / sent:.0f} CPU us per status")


def _cdr_bytes(url: str, count: int) -> None:
    engine, _ = migrated_engine(url)
    store = CdrStore(engine)
    try:
        for first in range(0, count, BATCH):
            last = min(first + BATCH, count)
            store.ingest("site-a", [(n + 1, make_cdr(n)) for n in range(first, last)])
        with engine.connect() as conn:
            for table in ("cdrs", "cdr_rollup", "cdr_rollup_daily"):
                size = int(conn.scalar(sa.text(f"SELECT pg_total_relation_size('{table}')")))
                print(f"{table}: {size / 2**20:.1f} MiB, {size / count:.0f} bytes per CDR")
    finally:
        engine.dispose()


def main() -> None:
    parser = harness.parser(__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--status-s", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--cdr-bytes", type=int, default=0, metavar="N")
    parser.add_argument("--nodes", default="", metavar="A,B", help="node counts to compare")
    parser.add_argument("--rounds", type=int, default=3, help="with --nodes")
    parser.add_argument("--small-sites", type=int, default=600, help="sites, one-CDR batches")
    parser.add_argument("--small-cdrs", type=int, default=20, help="CDRs per site, small")
    parser.add_argument("--full-sites", type=int, default=12, help="sites, full batches")
    parser.add_argument("--full-cdrs", type=int, default=10_000, help="CDRs per site, full")
    parser.add_argument("--full-batch", type=int, default=5000, help="sync.batch_size")
    parser.add_argument("--processes", type=int, default=2, help="sender processes")
    harness.run(measure, parser.parse_args())


def measure(args: argparse.Namespace) -> None:
    if args.nodes:
        with tempfile.TemporaryDirectory(prefix="bench-nodes-") as tmp, postgres_server() as url:
            node_ingest.compare(args, Path(tmp), url)
        return
    if args.cdr_bytes:
        with postgres_server() as url:
            _cdr_bytes(url, args.cdr_bytes)
        return
    with tempfile.TemporaryDirectory(prefix="bench-nodes-") as tmp:
        if args.postgres:
            with postgres_server() as url:
                _run(args, Path(tmp), url)
        else:
            _run(args, Path(tmp), None)


if __name__ == "__main__":
    main()
