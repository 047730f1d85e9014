"""Media workers under load: sipp calls to the echo service vs the same load to a sipp UAS.

Both runs go through the full edge (Kamailio, rtpengine anchoring). In the first, every
call ends in a pjsua2 media worker (echo: the worker sends the caller's RTP back
through its conference bridge); in the second, the same calls end in a sipp UAS.
Reports failed calls, setup rate, calls and PSS per worker, the workers' CPU, and the
cost of a worker call over an edge-only call as a ratio; and the workers' start time
(spawn to ready) and, after the load, the replacement time of a worker killed with
SIGKILL (its exit seen to its replacement ready), both as the pool measures and logs them.

    .venv/bin/python bench/bench_media_workers.py --workers 12 --rate 10 --hold 4 --calls 400

``--path room`` sends the calls into one meet-me room instead of the echo service: one
speaker (a sipp call sending a tone, up before the first listener and until after the
last) and silent listeners (they send no RTP). Media calls are not recorded, so once the
calls are up the bench has rtpengine record every call (ng ``start recording``) and
copies the pcaps 3 s later, while the calls are still up (``--hold`` above 4 s). It
reports on how many workers the room's participants were (each call's worker, from the
appliance's open call records) and how many recorded listeners heard the speaker (their
pcap, which only the worker's side sends into, holds audio that is not silent), on the
speaker's worker and on the others, i.e. across the room's links. A room of 20 on five workers:

    .venv/bin/python bench/bench_media_workers.py --path room --workers 5 \
        --rate 2 --hold 9.5 --calls 25

``--path ivr`` sends the calls into an IVR flow on the workers (``ivr-bench``: a menu
playing a tone, digit 1 sets the variable ``choice`` and hangs up); each caller sends
DTMF 1 (SIP INFO, ``application/dtmf-relay``) after ``--hold`` seconds and waits for
the worker's BYE. The flow's outcome is checked per call: the answered calls whose CDR
carries ``choice: one`` (set by the flow, reported by the worker) are counted.

    .venv/bin/python bench/bench_media_workers.py --path ivr --workers 6 \
        --rate 5 --hold 4 --calls 100

Needs the Debian packages kamailio, kamailio-extra-modules, rtpengine-daemon, sip-tester.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml
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
    read_cdrs,
    run_load,
    uac_argv,
    uac_outcomes,
    wait_uac,
)

from bench import harness

REPLACE_S = 30
TONE_ACTION = '<nop><action><exec rtp_stream="TONE,-1,0"/></action></nop>\n'
HEARD_S = 1.0
LOUD = 100
RECORD_S = 3
# The IVR path's flow: a menu (a one-second tone), digit 1 sets ``choice`` and hangs up.
IVR_FLOW = {
    "start": "ask",
    "nodes": {
        "ask": {"type": "menu", "prompt": "beep", "options": {"1": "chosen"}, "timeout_s": 30,
                "retries": 0},
        "chosen": {"type": "set", "vars": {"choice": "one"}, "next": "done"},
        "done": {"type": "hangup"},
    },
}  # fmt: skip
# The caller of the IVR path: after the answer, ``--hold`` (sipp's -d), DTMF 1 by SIP INFO,
# then the worker's BYE once the flow hung up.
IVR_TAIL = """<pause/>
<send retrans="500"><![CDATA[
INFO [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <sip:1001@bench.local>;tag=[call_number]
To: <sip:CALLEE@bench.local>[peer_tag_param]
Call-ID: [call_id]
CSeq: 3 INFO
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal=1
Duration=160
]]></send>
<recv response="200"/>
<recv request="BYE"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
<nop next="end"><action><log message="answered [call_id]"/></action></nop>
"""
READY = re.compile(r"media worker (\w+) ready in ([0-9.]+) s")
REPLACED = re.compile(r"media worker (\w+) replaced in ([0-9.]+) s")


def _workers(pbx_pid: int) -> list[int]:
    found = []
    for pid in _children(pbx_pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"drivers.media.worker" in cmdline:
            found.append(pid)
    return found


def start_times(log: Path) -> list[float]:
    """The pool's spawn-to-ready time of every worker start logged so far."""
    return [float(m[2]) for m in READY.finditer(log.read_text(errors="replace"))]


def replace_one(log: Path, pid: int) -> float:
    """Kill -9 the worker ``pid``; the pool's time from its exit to its replacement ready."""
    os.kill(pid, signal.SIGKILL)
    found: list[float] = []

    def replaced() -> bool:
        found[:] = [float(m[2]) for m in REPLACED.finditer(log.read_text(errors="replace"))]
        return bool(found)

    harness.wait_until(replaced, REPLACE_S, "a killed media worker's replacement")
    return found[0]


def start_speaker(run: Run, args: argparse.Namespace, target: str, uac: str) -> Any:
    """The room's speaker: one call sending the tone, held past the listeners' last call."""
    hold = args.calls / args.rate + args.hold + 3
    speaker = argparse.Namespace(calls=1, rate=1, hold=hold)
    proc = run.spawn(uac_argv(speaker, target, uac, "speaker"), "speaker.log")
    time.sleep(2)
    return proc


def record_calls_up(run: Run) -> int:
    """Have rtpengine record every call it carries now; returns how many."""
    import asyncio

    from drivers.sip.ng import NgClient

    async def record() -> int:
        ng = NgClient("127.0.0.1", run.ng_port)
        calls = (await ng.command("list", limit=100000)).get("calls", [])
        for call_id in calls:
            await ng.command("start recording", **{"call-id": call_id})
        return len(calls)

    return asyncio.run(record())


def record_room(run: Run) -> tuple[int, Path, dict[str, str]]:
    """Record every call up for RECORD_S, then copy the pcaps (the calls still up); and
    each open call's worker."""
    recorded, workers = record_calls_up(run), open_call_workers(run)
    time.sleep(RECORD_S)
    return recorded, copy_pcaps(run), workers


def open_call_workers(run: Run) -> dict[str, str]:
    """The worker (``media_peer``) of every open call, read from the running appliance's
    store (LMDB readers in other processes are safe; CDRs do not keep the worker)."""
    import lmdb
    import msgpack

    from appliance.pbx.calls import OPEN

    env = lmdb.open(str(run.work / "data" / "store"), readonly=True, max_dbs=32)
    try:
        with env.begin() as txn:
            calls = [
                msgpack.unpackb(v, raw=False)
                for _, v in txn.cursor(env.open_db(OPEN.encode(), txn=txn))
            ]
    finally:
        env.close()
    return {c["call_id"]: c.get("media_peer") or "?" for c in calls if "call_id" in c}


def copy_pcaps(run: Run) -> Path:
    """A copy of the pcaps rtpengine is writing now (the appliance deletes them later)."""
    copies = run.work / "room-pcaps"
    copies.mkdir(exist_ok=True)
    for pcap in (run.work / "data" / "pbx" / "spool" / "pcaps").glob("*.pcap"):
        shutil.copyfile(pcap, copies / pcap.name)
    return copies


def heard(pcap: Path) -> float:
    """Seconds of audio above silence in the G.711 u-law RTP of a raw-IPv4 pcap."""
    from scapy.utils import RawPcapReader

    from drivers.sip.recording import ULAW

    # A pcap copied while rtpengine writes it may end mid-packet: scapy warns, we read on.
    logging.getLogger("scapy").setLevel(logging.ERROR)
    loud = 0
    with RawPcapReader(str(pcap)) as reader:
        for packet, _meta in reader:
            ihl = (packet[0] & 0x0F) * 4
            rtp = packet[ihl + 8 :]
            if len(rtp) > 12 and rtp[1] & 0x7F == 0:
                loud += sum(1 for code in rtp[12:] if abs(ULAW[code]) > LOUD)
    return loud / 8000


def room_figures(work: Path, pcaps: Path, worker: dict[str, str]) -> dict[str, Any]:
    """Participants per worker (of the calls up when they were recorded) and listeners
    that heard the speaker, from the pcaps copied then."""
    speaker = set(uac_outcomes(work, "speaker").answered)
    wavs = {unquote(p.name.rsplit("-", 1)[0]): p for p in pcaps.glob("*.pcap")}
    hub = next((worker[c] for c in speaker if c in worker), "?")
    listeners = [c for c in worker if c not in speaker and c in wavs]
    if not listeners or hub == "?":
        raise harness.Incomplete(f"no recorded listener or no speaker in the room: {worker}")
    same = [c for c in listeners if worker[c] == hub]
    other = [c for c in listeners if worker[c] != hub]
    return {
        "per_worker": dict(collections.Counter(worker.values())),
        "heard_same": sum(heard(wavs[c]) >= HEARD_S for c in same),
        "same": len(same),
        "heard_other": sum(heard(wavs[c]) >= HEARD_S for c in other),
        "other": len(other),
    }


def ivr_uac() -> str:
    """The UAC scenario up to its ACK of the answer, then the IVR caller's DTMF and the
    worker's BYE (the refused branch, for a 503, unchanged)."""
    head, rest = UAC.split(TONE_ACTION)
    return head + IVR_TAIL + rest[rest.index('<label id="refused"/>') :]


def with_ivr_flow(config: Path) -> None:
    """Add the IVR path's prompt and flow to the appliance's configuration."""
    data = yaml.safe_load(config.read_text())
    data["pbx"]["media"]["prompts"] = {"beep": {"tone_hz": 700, "seconds": 1}}
    data["pbx"]["ivr"] = {"flows": {"bench": IVR_FLOW}}
    config.write_text(yaml.safe_dump(data))


def ivr_outcomes(work: Path) -> dict[str, int]:
    """Answered calls, and those whose CDR carries the flow's outcome (``choice: one``)."""
    answered = set(uac_outcomes(work).answered)
    cdrs = [c for c in read_cdrs(work / "data" / "store") if c.get("call_id") in answered]
    chosen = sum(1 for c in cdrs if (c.get("variables") or {}).get("choice") == "one")
    return {"answered": len(answered), "cdrs": len(cdrs), "outcome_ok": chosen}


def run_workers(args: argparse.Namespace) -> dict[str, Any]:
    """Echo calls into the worker pool; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        work = Path(tmp)
        tone = work / "tone.ulaw"
        _tone_file(tone)
        run = Run(work, anchor_media=True, media_workers=args.workers)
        if args.path == "ivr":
            with_ivr_flow(run.config)
        try:
            pbx = run.start_pbx()
            workers = _workers(pbx.pid)
            starts = start_times(work / "pbx.log")
            spread = f"median {statistics.median(starts):.2f}, max {max(starts):.2f}"
            harness.record("media worker start (spawn to ready), s", spread)
            idle_pss = pss_kb(workers)
            room = args.path == "room"
            callee = {"room": "room-1", "ivr": "ivr-bench"}.get(args.path, "echo")
            values = {"PASSWORD": PASSWORD, "TONE": str(tone), "CALLEE": callee}
            target = f"127.0.0.1:{run.sip_port}"
            speaker = None
            if room:
                speaker = start_speaker(
                    run, args, target, _scenario(work, "speaker", UAC, **values)
                )
            started = time.monotonic()
            scenario = {"room": UAC.replace(TONE_ACTION, ""), "ivr": ivr_uac()}.get(args.path, UAC)
            uac = run.spawn(uac_argv(args, target, _scenario(work, "uac", scenario, **values)),
                            "uac.log")  # fmt: skip
            time.sleep(args.hold + 1)
            ticks0, t0 = cpu_ticks(workers), time.monotonic()
            peak_pss = 0
            while uac.poll() is None and time.monotonic() - started < args.calls / args.rate:
                peak_pss = max(peak_pss, pss_kb(workers))
                time.sleep(0.5)
            cpu = (cpu_ticks(workers) - ticks0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)
            harness.record(
                f"media worker ({args.path}), steady phase",
                f"workers' CPU {cpu:.2f} cores, PSS {peak_pss / 1024:.1f} MiB",
            )
            recorded, pcaps, peers = record_room(run) if room else (0, None, {})
            wait_uac(uac, args, work, f"media worker ({args.path})", started)
            elapsed = time.monotonic() - started
            stats = _stat(work, "uac.csv")
            harness.record("room calls recorded", recorded)
            if speaker is not None:
                harness.wait_exit(speaker, 30, "the room's speaker")
            replacement = replace_one(work / "pbx.log", workers[0])
            harness.record("media worker replacement (kill -9 to ready), s", f"{replacement:.2f}")
        finally:
            run.close()
        ok, failed = int(stats.get("SuccessfulCall(C)", 0)), int(stats.get("FailedCall(C)", 0))
        concurrent = min(args.calls, args.rate * args.hold)
        room_result = room_figures(work, pcaps, peers) if pcaps is not None else None
        if room_result is not None:
            harness.record("room", room_result)
        ivr_result = ivr_outcomes(work) if args.path == "ivr" else None
        if ivr_result is not None:
            harness.record("ivr outcomes", ivr_result)
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
            "start_median_s": statistics.median(starts),
            "start_max_s": max(starts),
            "replacement_s": replacement,
            "room": room_result,
            "ivr": ivr_result,
        }


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--hold", type=float, default=4)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--path", choices=("echo", "room", "ivr"), default="echo",
                        help="the media workers' service the calls go to")  # fmt: skip
    args = parser.parse_args()
    check_steady_phase(parser, args)
    harness.run(measure, args)


def measure(args: argparse.Namespace) -> None:
    """Calls into the worker pool, then the same load to a sipp UAS; the table."""
    media = run_workers(args)
    harness.record(f"media worker ({args.path})", media)
    edge = run_load(args, RECORDED)
    print("| path | calls | failed | setup rate/s | concurrent | workers | calls per worker "
          "| CPU cores (workers) | PSS per worker MiB (idle) | PSS per call KiB |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| edge → media worker ({args.path}) | {media['calls']} | {media['failed']} "
          f"({media['failed_pct']:.2f}%) | {media['rate']:.1f} | {media['concurrent']:.0f} "
          f"| {media['workers']} | {media['calls_per_worker']:.1f} | {media['cpu_cores']:.2f} "
          f"| {media['pss_per_worker_mb']:.1f} ({media['idle_pss_per_worker_mb']:.1f}) "
          f"| {media['pss_per_call_kb']:.0f} |")  # fmt: skip
    print(f"| edge → sipp UAS (recorded) | {edge['calls']} | {edge['failed']} "
          f"({edge['failed_pct']:.2f}%) | {edge['rate']:.1f} | {edge['concurrent']:.0f} | - | - "
          f"| {edge['cpu_cores']:.2f} (edge) | - | {edge['pss_per_call_kb']:.0f} |")  # fmt: skip
    print(f"worker CPU per call / edge CPU per call: "
          f"{media['cpu_cores'] / max(edge['cpu_cores'], 1e-6):.2f}")  # fmt: skip
    room = media["room"]
    if room is not None:
        print(f"room: participants per worker {room['per_worker']}; listeners that heard the "
              f"speaker: on its worker {room['heard_same']} of {room['same']}, on other "
              f"workers (across links) {room['heard_other']} of {room['other']}")  # fmt: skip
    ivr = media["ivr"]
    if ivr is not None:
        print(f"ivr: {ivr['outcome_ok']} of {ivr['answered']} answered calls reached the flow's "
              f"outcome (CDR variable choice=one; {ivr['cdrs']} CDRs)")  # fmt: skip
    print(f"worker start (spawn to ready, {media['workers']} started at once): median "
          f"{media['start_median_s']:.2f} s, max {media['start_max_s']:.2f} s; replacement "
          f"after kill -9 (exit to ready, backoff included): "
          f"{media['replacement_s']:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
