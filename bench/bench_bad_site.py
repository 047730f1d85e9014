"""HQ under a hostile site: the other sites' CDR sync rate and HQ's memory, clean vs attacked.

Usage: .venv/bin/python bench/bench_bad_site.py [--cdrs N] [--rounds N] [--records N]
       [--probe-s S]

Each round runs the same end-to-end CDR sync twice, side by side: a real appliance
drains ``--cdrs`` CDRs from its outbox into a real aggregator (CurveZMQ on loopback,
SQLite), once alone and once while a second site, admitted with its own key, sends
garbage as fast as libzmq takes it: frames that are not msgpack, messages of unknown
types, and ``cdr-batch`` messages of ``--records`` CDRs that all fail validation
(a duration that is not a number, a start time in milliseconds). The attacker never
reads its replies; when HQ cuts its connection it reconnects after 10 ms
(ZMQ_RECONNECT_IVL), when HQ refuses its handshake it connects again at once, and it
goes on sending as soon as it is let back in.
Printed per run: the good site's rate, the aggregator's CPU time and peak and final
resident memory (VmHWM, VmRSS), what the attacker sent and what HQ refused from it, how
often HQ banned it and how many of its reconnects ZAP refused. ``--probe-s`` first
measures HQ's CPU with no good site, idle and then attacked, for that many seconds each.
The attacked/clean ratio must stay >= 0.9 and the attacked peak RSS bounded. On a shared
machine the rates vary from run to run; the aggregator's CPU time for the same CDRs does
not, and shows what the attack costs HQ itself.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.sync import keys
from drivers.sync.protocol import CdrBatch, Hello, encode
from tests.procs import Service
from tests.sync_env import SyncEnv, admit_site, make_cdr, make_env, wait_for

BAD = "site-bad"


def garbage_frames(records: int) -> list[list[bytes]]:
    """The attacker's repertoire, sent round-robin."""
    bad_cdrs = [
        (n, make_cdr(n, duration_s="sixty") if n % 2 else make_cdr(n, start=1_772_445_600_000))
        for n in range(records)
    ]
    return [
        [b"\xc1\xc1 not msgpack"],
        [b"\x82\xa1v\x01\xa1t\xa8whatever"],
        [bytes(frame) for frame in encode(CdrBatch(bad_cdrs))],
    ]


class Attacker:
    """A site sending garbage at full speed from its own process, never reading replies.

    The process runs at nice 10: on the two-core bench machine the attacker's own CPU
    (building and encrypting frames) would otherwise be taken from HQ and the good site,
    which measures the machine, not HQ; a real attacker's CPU is on its own machine.
    """

    def __init__(self, env: SyncEnv, secret: Path, records: int) -> None:
        server_key = env.root / "agg" / "keys" / "aggregator.key"
        self.sent = multiprocessing.Value("q", 0)
        self.bytes = multiprocessing.Value("q", 0)
        self._stop = multiprocessing.Event()
        args = (env.ingest, secret, server_key, records, self.sent, self.bytes, self._stop)
        self._process = multiprocessing.Process(target=_attack, args=args, daemon=True)

    def __enter__(self) -> Attacker:
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()


def _attack(
    endpoint: str,
    secret_file: Path,
    server_key: Path,
    records: int,
    sent: Any,
    sent_bytes: Any,
    stop: Any,
) -> None:
    os.nice(10)
    frames = garbage_frames(records)
    sizes = [sum(len(f) for f in message) for message in frames]
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.curve_publickey, sock.curve_secretkey = keys.load_secret(secret_file)
    sock.curve_serverkey = keys.load_public(server_key)
    sock.linger = 0
    sock.sndtimeo = 10
    sock.reconnect_ivl = 10
    # Queue only on a live connection, so "sent" counts what HQ could have received.
    sock.immediate = True
    refused = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    sock.connect(endpoint)
    hello = encode(Hello(BAD, "attacker"))
    while not stop.is_set():
        try:
            sock.send_multipart(hello)
            break
        except zmq.Again:
            continue
    count, size = 0, 0
    while not stop.is_set():
        try:
            sock.send_multipart(frames[count % len(frames)])
        except zmq.Again:
            if refused.poll(0):
                # libzmq gives up on an endpoint whose handshake was refused; an attacker
                # does not: connect again at once.
                refused.recv_multipart()
                sock.disconnect(endpoint)
                sock.connect(endpoint)
            continue
        size += sizes[count % len(frames)]
        count += 1
        if count % 256 == 0:
            sent.value, sent_bytes.value = count, size
    refused.close(linger=0)
    sock.close(linger=0)
    ctx.term()


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) of a process in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    peak = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    now = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert peak is not None
    assert now is not None
    return int(peak.group(1)), int(now.group(1))


def counted(env: SyncEnv, client: httpx.Client, name: str, label: str) -> float:
    """The sum of HQ's counter ``name`` over the series carrying ``label``."""
    text = client.get(f"{env.agg_url}/metrics", timeout=5).text
    found = re.findall(rf"^{name}\{{[^}}]*{label}[^}}]*\}} (\S+)$", text, re.M)
    return sum(float(c) for c in found)


def refused(env: SyncEnv, client: httpx.Client) -> float:
    return counted(env, client, "callmesh_records_refused_total", f'site="{BAD}"')


def bans(env: SyncEnv, client: httpx.Client) -> tuple[float, float]:
    """(times the bad site was banned, its reconnects ZAP refused)."""
    banned = counted(env, client, "callmesh_sites_banned_total", f'site="{BAD}"')
    zap = counted(env, client, "callmesh_rejected_peers_total", 'reason="banned-site"')
    return banned, zap


@dataclass(frozen=True)
class Run:
    """What one sync measured."""

    rate: float
    refused: float
    peak_kib: int
    final_kib: int
    hq_cpu_s: float
    attack_msgs: int = 0
    attack_mb: float = 0.0
    seconds: float = 0.0
    bans: tuple[float, float] = (0.0, 0.0)


def run(root: Path, n: int, attack: bool, records: int) -> Run:
    """One sync of ``n`` CDRs, with or without an attacker beside it."""
    # The product's ack timeout (the tests' 3 s would turn a slow ack into a lost session).
    env = make_env(root, ack_timeout_s=15)
    secret = admit_site(env, BAD)
    env.prefill(n)
    with ExitStack() as stack:
        agg = Service(["aggregator", "run", "-c", str(env.agg_config)], root / "agg.log")
        stack.callback(agg.close)
        agg.wait_healthy(f"{env.agg_url}/healthz")
        http = stack.enter_context(httpx.Client())
        attacker = None
        if attack:
            attacker = stack.enter_context(Attacker(env, secret, records))
            wait_for(lambda: refused(env, http) > 1000, 30, "the attack under way")
        app = Service(["appliance", "run", "-c", str(env.app_config)], root / "app.log")
        stack.callback(app.close)
        wait_for(lambda: env.ingested(http) > 0, 60, "first CDRs", interval=0.005)
        start, base, cpu = time.perf_counter(), env.ingested(http), cpu_s(agg.proc.pid)
        sent = (attacker.sent.value, attacker.bytes.value) if attacker else (0, 0)
        wait_for(lambda: env.pending(http) == 0, 600, "outbox drained", interval=0.02)
        took = time.perf_counter() - start
        hq_cpu = cpu_s(agg.proc.pid) - cpu
        peak, final = memory_kib(agg.proc.pid)
        msgs, size = (
            (attacker.sent.value - sent[0], attacker.bytes.value - sent[1]) if attacker else (0, 0)
        )
        rate = (n - base) / took
        return Run(
            rate, refused(env, http), peak, final, hq_cpu, msgs, size / 1e6, took, bans(env, http)
        )


def probe(root: Path, seconds: float, records: int) -> None:
    """HQ's CPU with only the attacker connected: what the attack itself costs HQ."""
    env = make_env(root)
    secret = admit_site(env, BAD)
    with ExitStack() as stack:
        agg = Service(["aggregator", "run", "-c", str(env.agg_config)], root / "agg.log")
        stack.callback(agg.close)
        agg.wait_healthy(f"{env.agg_url}/healthz")
        http = stack.enter_context(httpx.Client())
        idle = cpu_s(agg.proc.pid)
        time.sleep(seconds)
        idle = cpu_s(agg.proc.pid) - idle
        attacker = stack.enter_context(Attacker(env, secret, records))
        wait_for(lambda: refused(env, http) > 1000, 30, "the attack under way")
        cpu, sent = cpu_s(agg.proc.pid), attacker.bytes.value
        time.sleep(seconds)
        cpu, sent = cpu_s(agg.proc.pid) - cpu, attacker.bytes.value - sent
        banned, zap = bans(env, http)
        print(
            f"probe, no good site, {seconds:.0f} s each: HQ CPU idle {idle / seconds:.1%} of a "
            f"core, attacked {cpu / seconds:.1%}; attacker delivered {sent / seconds / 1e6:,.1f} "
            f"MB/s; banned {banned:.0f} times, {zap:.0f} reconnects refused"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdrs", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=500, help="invalid CDRs per bad batch")
    parser.add_argument(
        "--probe-s", type=float, default=0, help="first measure HQ with only the attacker"
    )
    args = parser.parse_args()
    ratios: list[float] = []
    cpu: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="callmesh-bench-") as tmp:
        base = Path(tmp)
        if args.probe_s:
            probe(base / "probe", args.probe_s, args.records)
        for i in range(args.rounds):
            clean = run(base / f"clean-{i}", args.cdrs, False, args.records)
            hit = run(base / f"attacked-{i}", args.cdrs, True, args.records)
            ratios.append(hit.rate / clean.rate)
            cpu.append((clean.hq_cpu_s, hit.hq_cpu_s))
            print(
                f"round {i + 1}: clean {clean.rate:,.0f} CDR/s (HQ CPU {clean.hq_cpu_s:.1f} s, "
                f"peak RSS {clean.peak_kib >> 10} MiB); attacked {hit.rate:,.0f} CDR/s "
                f"(HQ CPU {hit.hq_cpu_s:.1f} s, peak RSS {hit.peak_kib >> 10} MiB, final "
                f"{hit.final_kib >> 10} MiB), ratio {hit.rate / clean.rate:.2f}; attacker sent "
                f"{hit.attack_msgs / hit.seconds:,.0f} msg/s, {hit.attack_mb / hit.seconds:,.0f} "
                f"MB/s; HQ refused {hit.refused:,.0f} from it, banned it {hit.bans[0]:.0f} "
                f"times and refused {hit.bans[1]:.0f} of its reconnects"
            )
    if not ratios:
        return
    per_k = 1000 / args.cdrs
    print(
        f"attacked/clean over {args.rounds} rounds: best {max(ratios):.2f}, "
        f"median {statistics.median(ratios):.2f}, worst {min(ratios):.2f}; HQ CPU per 1000 "
        f"good CDRs, median: clean {statistics.median(c for c, _ in cpu) * per_k * 1000:.0f} ms, "
        f"attacked {statistics.median(h for _, h in cpu) * per_k * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
