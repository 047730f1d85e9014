"""Media workers under load: sipp calls to the echo service vs the same load to a sipp UAS.

Both runs go through the full edge (Kamailio, rtpengine anchoring). In the first, every
call ends in a pjsua2 media worker (echo: the worker sends the caller's RTP back
through its conference bridge); in the second, the same calls end in a sipp UAS.
Reports failed calls, setup rate, calls and PSS per worker, the workers' CPU, and the
cost of a worker call over an edge-only call as a ratio.

    .venv/bin/python bench/bench_media_workers.py --workers 12 --rate 10 --hold 4 --calls 400

Needs the Debian packages kamailio, kamailio-extra-modules, rtpengine-daemon, sip-tester.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_pbx_calls import (
    PASSWORD,
    RECORDED,
    UAC,
    Run,
    _children,
    _scenario,
    _stat,
    _tone_file,
    check_steady_phase,
    cpu_ticks,
    pss_kb,
    run_load,
    uac_argv,
    wait_uac,
)

from bench import harness


def _workers(pbx_pid: int) -> list[int]:
    found = []
    for pid in _children(pbx_pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"drivers.media.worker" in cmdline:
            found.append(pid)
    return found


def run_workers(args: argparse.Namespace) -> dict[str, Any]:
    """Echo calls into the worker pool; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        work = Path(tmp)
        tone = work / "tone.ulaw"
        _tone_file(tone)
        run = Run(work, anchor_media=True, media_workers=args.workers)
        try:
            pbx = run.start_pbx()
            workers = _workers(pbx.pid)
            idle_pss = pss_kb(workers)
            values = {"PASSWORD": PASSWORD, "TONE": str(tone), "CALLEE": "echo"}
            started = time.monotonic()
            target = f"127.0.0.1:{run.sip_port}"
            uac = run.spawn(uac_argv(args, target, _scenario(work, "uac", UAC, **values)),
                            "uac.log")  # fmt: skip
            time.sleep(args.hold + 1)
            ticks0, t0 = cpu_ticks(workers), time.monotonic()
            peak_pss = 0
            while uac.poll() is None and time.monotonic() - started < args.calls / args.rate:
                peak_pss = max(peak_pss, pss_kb(workers))
                time.sleep(0.5)
            cpu = (cpu_ticks(workers) - ticks0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)
            harness.record(
                "media worker (echo), steady phase",
                f"workers' CPU {cpu:.2f} cores, PSS {peak_pss / 1024:.1f} MiB",
            )
            wait_uac(uac, args, work, "media worker (echo)", started)
            elapsed = time.monotonic() - started
            stats = _stat(work, "uac.csv")
        finally:
            run.close()
        ok, failed = int(stats.get("SuccessfulCall(C)", 0)), int(stats.get("FailedCall(C)", 0))
        concurrent = min(args.calls, args.rate * args.hold)
        return {
            "calls": ok + failed,
            "failed": failed,
            "failed_pct": 100 * failed / max(1, ok + failed),
            "rate": (ok + failed) / max(1e-3, elapsed - args.hold),
            "concurrent": concurrent,
            "workers": len(workers),
            "calls_per_worker": concurrent / max(1, len(workers)),
            "cpu_cores": cpu,
            "pss_per_worker_mb": peak_pss / max(1, len(workers)) / 1024,
            "idle_pss_per_worker_mb": idle_pss / max(1, len(workers)) / 1024,
            "pss_per_call_kb": max(0, peak_pss - idle_pss) / concurrent,
        }


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--hold", type=float, default=4)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()
    check_steady_phase(parser, args)
    harness.run(measure, args)


def measure(args: argparse.Namespace) -> None:
    """Echo calls into the worker pool, then the same load to a sipp UAS; the table."""
    media = run_workers(args)
    harness.record("media worker (echo)", media)
    edge = run_load(args, RECORDED)
    print("| path | calls | failed | setup rate/s | concurrent | workers | calls per worker "
          "| CPU cores (workers) | PSS per worker MiB (idle) | PSS per call KiB |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| edge → media worker (echo) | {media['calls']} | {media['failed']} "
          f"({media['failed_pct']:.2f}%) | {media['rate']:.1f} | {media['concurrent']:.0f} "
          f"| {media['workers']} | {media['calls_per_worker']:.1f} | {media['cpu_cores']:.2f} "
          f"| {media['pss_per_worker_mb']:.1f} ({media['idle_pss_per_worker_mb']:.1f}) "
          f"| {media['pss_per_call_kb']:.0f} |")  # fmt: skip
    print(f"| edge → sipp UAS (recorded) | {edge['calls']} | {edge['failed']} "
          f"({edge['failed_pct']:.2f}%) | {edge['rate']:.1f} | {edge['concurrent']:.0f} | - | - "
          f"| {edge['cpu_cores']:.2f} (edge) | - | {edge['pss_per_call_kb']:.0f} |")  # fmt: skip
    print(f"worker CPU per call / edge CPU per call: "
          f"{media['cpu_cores'] / max(edge['cpu_cores'], 1e-6):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
