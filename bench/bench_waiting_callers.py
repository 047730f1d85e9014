"""Waiting callers: N sipp callers in an ACD queue on real media workers vs N echo calls.

An appliance (Kamailio, rtpengine anchoring, the media workers, the contact centre), a
fresh one for each part, one part after the other in one run:

1. echo: N sipp calls to the workers' echo service (the worker sends the caller's RTP
   back through its conference bridge), each caller streaming a tone;
2. queue: N sipp calls to the queue's number with every agent logged out: each caller
   hears the hold music (a WAV file, looped by the worker) and, every
   ``--announce-every`` seconds, its position spoken by espeak-ng; then ``--agents``
   agents log in through the API and answer (a sipp UAS registered as every agent,
   streaming a tone back), while the other callers keep waiting.

For each, while every call is up (the steady phase, ``--steady`` seconds): CPU of the
workers and of the appliance process (with its finished children, espeak-ng) and PSS of
both above their idle PSS, per call, and the ratio queue / echo. The answering phase
reports how many callers agents answered and the CPU while they talk.

    .venv/bin/python bench/bench_waiting_callers.py --callers 100 --workers 32 --agents 10

A caller's worker rings its agent, so a caller can be answered only while its worker has a
free slot (4 calls per worker): keep ``--workers`` times 4 above ``--callers`` + ``--agents``.
Needs the Debian packages kamailio, kamailio-extra-modules, rtpengine-daemon, sip-tester,
espeak-ng.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import math
import os
import sys
import tempfile
import time
import urllib.request
import wave
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_pbx_calls import (
    PASSWORD,
    UAC,
    UAS,
    Run,
    _children,
    _free_port,
    _scenario,
    _stat,
    _tone_file,
    pss_kb,
)

from bench import harness

TOKEN = "bench-operator-token-0123456789"
QUEUE_NUMBER = "700"
FIRST_AGENT = 2001
API_S = 10

REGISTER_AGENTS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench register agents">
<send retrans="500"><![CDATA[
REGISTER sip:bench.local SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:AGENT@bench.local>;tag=r[call_number]
To: <sip:AGENT@bench.local>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:AGENT@127.0.0.1:UAS_PORT>
Expires: 3600
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="401" auth="true"/>
<send retrans="500"><![CDATA[
REGISTER sip:bench.local SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:AGENT@bench.local>;tag=r[call_number]
To: <sip:AGENT@bench.local>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:AGENT@127.0.0.1:UAS_PORT>
[authentication username=AGENT password=PASSWORD]
Expires: 3600
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="200"/>
</scenario>
"""


def agents(args: argparse.Namespace) -> list[str]:
    """The agents' extensions."""
    return [str(FIRST_AGENT + n) for n in range(args.agents)]


def music_file(path: Path) -> None:
    """Ten seconds of a two-note chord, 8 kHz mono 16-bit (the hold music)."""
    samples = array.array("h", (round(3000 * math.sin(2 * math.pi * 440 * n / 8000)
                                      + 3000 * math.sin(2 * math.pi * 554 * n / 8000))
                                for n in range(80000)))  # fmt: skip
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(samples.tobytes())


def configure(run: Run, work: Path, args: argparse.Namespace) -> int:
    """The bench PBX's config with the queue, the agents and the API; the API's port."""
    config = yaml.safe_load(run.config.read_text())
    music = work / "music.wav"
    music_file(music)
    config["sip"]["extensions"] += [{"number": n, "password": PASSWORD} for n in agents(args)]
    config["pbx"]["media"]["prompts"] = {"music": {"file": str(music), "seconds": 10}}
    config["api"] = {"tokens": [{"name": "bench", "token": TOKEN, "role": "operator"}]}
    config["contact"] = {"queues": {"bench": {
        "number": QUEUE_NUMBER, "agents": agents(args), "hold_prompt": "music",
        "announce_every_s": args.announce_every, "wrapup_s": 0, "max_wait_s": 7200,
        "ring_timeout_s": 20,
        "announcement": "You are number {position} in the queue. Please hold.",
    }}}  # fmt: skip
    port = _free_port() + 3
    config["bench_api_port"] = port
    run.config.write_text(yaml.safe_dump(config))
    return port


def api(port: int, method: str, path: str) -> Any:
    """The appliance's API as the operator; the decoded answer."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1{path}", method=method,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=harness.limit(API_S)) as response:
        return json.loads(response.read() or b"null")


def queue_state(port: int) -> dict[str, Any]:
    found: dict[str, Any] = api(port, "GET", "/contact/queues")["queues"][0]
    return found


def ticks(pids: list[int], children: bool = False) -> int:
    """utime + stime (and, with ``children``, those of waited-for children) of ``pids``."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11 : 15 if children else 13])
    return total


def is_worker(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return b"drivers.media.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


class Processes:
    """The appliance process and its media workers."""

    def __init__(self, appliance: int) -> None:
        self.appliance = appliance
        self.workers = [p for p in _children(appliance) if is_worker(p)]
        self.idle_pss = self.pss()

    def pss(self) -> tuple[int, int]:
        """PSS (KiB) of the workers, of the appliance process."""
        return pss_kb(self.workers), pss_kb([self.appliance])

    def cpu(self) -> tuple[int, int]:
        """CPU ticks so far of the workers, of the appliance (with its children)."""
        return ticks(self.workers), ticks([self.appliance], children=True)


def steady(procs: Processes, seconds: float) -> dict[str, float]:
    """CPU (cores) and peak PSS above idle (KiB) of workers and appliance over ``seconds``."""
    (w0, a0), t0 = procs.cpu(), time.monotonic()
    peak = (0, 0)
    while time.monotonic() - t0 < seconds:
        now = procs.pss()
        peak = (max(peak[0], now[0]), max(peak[1], now[1]))
        time.sleep(0.5)
    (w1, a1), elapsed = procs.cpu(), time.monotonic() - t0
    tick = os.sysconf("SC_CLK_TCK")
    return {"workers_cpu": (w1 - w0) / tick / elapsed, "appliance_cpu": (a1 - a0) / tick / elapsed,
            "workers_pss_kb": max(0, peak[0] - procs.idle_pss[0]),
            "appliance_pss_kb": max(0, peak[1] - procs.idle_pss[1])}  # fmt: skip


def callers_argv(args: argparse.Namespace, run: Run, work: Path, callee: str) -> list[str]:
    """sipp placing ``args.callers`` calls to ``callee``, each held for its whole part."""
    tone = work / "tone.ulaw"
    values = {"PASSWORD": PASSWORD, "TONE": str(tone), "CALLEE": callee}
    scenario = _scenario(work, f"uac-{callee}", UAC, **values)
    return ["sipp", f"127.0.0.1:{run.sip_port}", "-sf", scenario,
            "-i", "127.0.0.1", "-p", str(_free_port() + 8), "-mp", str(_free_port() + 9),
            "-cp", str(_free_port() + 10), "-r", str(args.rate), "-m", str(args.callers),
            "-l", str(args.callers), "-d", str(int(hold_s(args, callee) * 1000)),
            "-nostdin", "-max_socket", "4096", "-trace_stat", "-stf", f"uac-{callee}.csv",
            "-fd", "1", "-timeout", str(int(run_s(args, callee)))]  # fmt: skip


def hold_s(args: argparse.Namespace, callee: str) -> float:
    """Each call lasts the ramp and the steady phase (and for the queue the answering
    phase), plus a margin."""
    answering = args.answering if callee == QUEUE_NUMBER else 0
    return float(args.callers / args.rate + args.steady + answering + 10)


def run_s(args: argparse.Namespace, callee: str) -> float:
    """sipp's own limit: every call placed and held, plus a minute."""
    return float(args.callers / args.rate + hold_s(args, callee) + 60)


def ended(uac: Any, args: argparse.Namespace, callee: str, started: float) -> None:
    """The callers hung up (sipp sends every BYE and exits), bounded by sipp's own limit."""
    harness.wait_exit(uac, run_s(args, callee) + 30, f"sipp callers ({callee})", since=started)


def all_up(uac: Any, work: Path, callee: str, count: int) -> bool:
    """Whether sipp has ``count`` calls up (it exited: the run cannot go on)."""
    if uac.poll() is not None:
        raise harness.Incomplete(f"sipp ({callee}) exited {uac.returncode} during the ramp")
    with contextlib.suppress(harness.Incomplete, IndexError, ValueError):
        return int(_stat(work, f"uac-{callee}.csv").get("CurrentCall", 0)) >= count
    return False


def echo_part(run: Run, work: Path, procs: Processes, args: argparse.Namespace) -> dict[str, Any]:
    """N echo calls: their steady-phase figures."""
    started = time.monotonic()
    uac = run.spawn(callers_argv(args, run, work, "echo"), "uac-echo.log")
    harness.wait_until(lambda: all_up(uac, work, "echo", args.callers),
                       args.callers / args.rate + 30, "echo calls up")  # fmt: skip
    figures = steady(procs, args.steady)
    harness.record("echo, steady phase", figures)
    ended(uac, args, "echo", started)
    return figures


def queue_part(run: Run, work: Path, procs: Processes, port: int,
               args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """N callers waiting, then agents answering: the figures of both phases."""
    started = time.monotonic()
    uac = run.spawn(callers_argv(args, run, work, QUEUE_NUMBER), "uac-queue.log")
    harness.wait_until(lambda: len(queue_state(port)["waiting"]) >= args.callers,
                       args.callers / args.rate + 30, "every caller waiting")  # fmt: skip
    waiting = steady(procs, args.steady)
    harness.record("queue, steady phase (everyone waiting)", waiting)
    for number in agents(args):
        api(port, "POST", f"/contact/agents/{number}/login")
    answering = steady(procs, args.answering)
    state = queue_state(port)
    answered = sum(a["calls"] for a in state["agents"])
    on_call = len([a for a in state["agents"] if a["state"] == "on-call"])
    paused = {a["agent"]: a["reason"] for a in state["agents"] if a["state"] == "paused"}
    harness.record("queue, answering phase", {**answering, "answered": answered,
                                              "on_call": on_call, "paused": paused})  # fmt: skip
    ended(uac, args, QUEUE_NUMBER, started)
    return {
        "waiting": waiting,
        "answering": answering,
        "answered": answered,
        "on_call": on_call,
        "still_waiting": len(state["waiting"]),
        "paused": paused,
    }


def register_agents(run: Run, work: Path, args: argparse.Namespace, uas_port: int) -> None:
    """Every agent registered at the one sipp UAS, one REGISTER each (bounded)."""
    for number in agents(args):
        values = {"PASSWORD": PASSWORD, "UAS_PORT": str(uas_port), "AGENT": number}
        argv = ["sipp", f"127.0.0.1:{run.sip_port}", "-sf",
                _scenario(work, "reg-agent", REGISTER_AGENTS, **values), "-m", "1",
                "-i", "127.0.0.1", "-p", str(_free_port() + 4), "-cp", str(_free_port() + 5),
                "-nostdin", "-timeout", "10s"]  # fmt: skip
        reg = run.spawn(argv, "reg-agent.log")
        if harness.wait_exit(reg, 15, f"agent {number}'s REGISTER") != 0:
            tail = (work / "reg-agent.log").read_text(errors="replace")[-2000:]
            raise harness.Incomplete(f"agent {number}'s REGISTER failed: {tail}")


def measure(args: argparse.Namespace) -> None:
    """Echo, then the queue, each on a fresh appliance; the table and the ratios."""
    echo = part(args, "echo")
    queue = part(args, QUEUE_NUMBER)
    report(args, echo, queue)


def part(args: argparse.Namespace, callee: str) -> dict[str, Any]:
    """One part on its own appliance (its idle PSS measured after start)."""
    with tempfile.TemporaryDirectory(prefix="bench-waiting-") as tmp:
        work = Path(tmp) if args.work is None else args.work / callee
        work.mkdir(parents=True, exist_ok=True)
        _tone_file(work / "tone.ulaw")
        run = Run(work, anchor_media=True, media_workers=args.workers)
        try:
            port = configure(run, work, args)
            pbx = start(run)
            if callee == QUEUE_NUMBER:
                agents_ready(run, work, args, port)
            procs = Processes(pbx.pid)
            harness.record(f"{callee}: idle PSS KiB (workers, appliance)", procs.idle_pss)
            if callee == QUEUE_NUMBER:
                return queue_part(run, work, procs, port, args)
            return echo_part(run, work, procs, args)
        finally:
            run.close()


def agents_ready(run: Run, work: Path, args: argparse.Namespace, port: int) -> None:
    """A sipp UAS answering for every agent, registered as each (bounded)."""
    uas_port = _free_port() + 6
    uas = ["sipp", "-sf", _scenario(work, "uas", UAS, TONE=str(work / "tone.ulaw")),
           "-i", "127.0.0.1", "-p", str(uas_port), "-mp", str(_free_port() + 7),
           "-nostdin", "-max_socket", "4096", "-fd", "1"]  # fmt: skip
    run.spawn(uas, "uas.log")
    register_agents(run, work, args, uas_port)
    harness.wait_until(lambda: all(a["registered"] for a in queue_state(port)["agents"]),
                       15, "agents registered")  # fmt: skip


def start(run: Run) -> Any:
    """The appliance with the contact centre (this file's ``--serve``), started."""
    pbx = run.spawn([sys.executable, __file__, "--serve", str(run.config)], "pbx.log")
    log = run.work / "pbx.log"

    def ready() -> bool:
        if pbx.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise harness.Incomplete(f"the appliance exited {pbx.returncode}: {tail}")
        return "ready components" in log.read_text(errors="replace")

    harness.wait_until(ready, 60, "appliance start")
    return pbx


def report(args: argparse.Namespace, echo: dict[str, Any], queue: dict[str, Any]) -> None:
    n = args.callers
    print(f"{n} callers, {args.workers} workers, {args.agents} agents, steady {args.steady} s")
    print("| phase | workers CPU ms/s per call | appliance CPU ms/s per call "
          "| workers PSS KiB per call | appliance PSS KiB per call |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    rows = (("echo call", echo), ("waiting caller (music, announcements)", queue["waiting"]),
            (f"queue with {args.agents} agents answering", queue["answering"]))  # fmt: skip
    for name, f in rows:
        print(f"| {name} | {1000 * f['workers_cpu'] / n:.2f} | {1000 * f['appliance_cpu'] / n:.2f} "
              f"| {f['workers_pss_kb'] / n:.0f} | {f['appliance_pss_kb'] / n:.0f} |")  # fmt: skip
    wait, base = queue["waiting"], echo
    cpu = (wait["workers_cpu"] + wait["appliance_cpu"]) / max(
        1e-6, base["workers_cpu"] + base["appliance_cpu"])  # fmt: skip
    pss = (wait["workers_pss_kb"] + wait["appliance_pss_kb"]) / max(
        1, base["workers_pss_kb"] + base["appliance_pss_kb"])  # fmt: skip
    print(f"waiting caller / echo call: CPU {cpu:.2f}, PSS {pss:.2f}")
    print(
        f"answered by agents: {queue['answered']} ({queue['on_call']} on a call at the end), "
        f"still waiting: {queue['still_waiting']}, agents paused: {queue['paused'] or 'none'}"
    )
    harness.record("ratio waiting / echo (CPU, PSS)", f"{cpu:.2f}, {pss:.2f}")


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=100)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--rate", type=float, default=10, help="new calls per second")
    parser.add_argument("--steady", type=float, default=20, help="seconds measured")
    parser.add_argument("--answering", type=float, default=15, help="seconds agents answer")
    parser.add_argument("--announce-every", type=float, default=10)
    parser.add_argument("--work", type=Path, help="keep each part's logs in this folder")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(yaml.safe_load(args.serve.read_text())))
        return
    if args.workers * 4 < args.callers + args.agents:
        parser.error("--workers x 4 call slots must hold --callers and the --agents' legs")
    harness.run(measure, args)


async def serve(data: dict[str, Any]) -> None:
    """The appliance's PBX, contact centre and API, until signalled."""
    import logging

    from fastapi import FastAPI

    from appliance.contact.settings import ContactSettings
    from appliance.contact.wiring import build_contact
    from appliance.pbx.assembly import build_exchange
    from appliance.pbx.settings import PbxSettings
    from appliance.settings import ApplianceSettings
    from appliance.store import Store
    from drivers.daemon.http import HttpServer
    from drivers.daemon.lifecycle import run_until_signalled
    from drivers.daemon.logs import configure_logging
    from drivers.sip.kamailio_config import Subscriber

    pbx_settings = PbxSettings.model_validate(data.pop("pbx"))
    contact_doc, port = data.pop("contact"), int(data.pop("bench_api_port"))
    settings = ApplianceSettings.model_validate(data)
    configure_logging("info")
    logging.getLogger("appliance.pbx").setLevel(logging.WARNING)
    store = Store.open(settings.data_dir / "store", 512)
    subs = [Subscriber(e.number, e.password, e.name) for e in settings.sip.extensions]
    pbx = build_exchange(pbx_settings, settings.site_id, settings.sip.domain, subs,
                         lambda: store, settings.data_dir)  # fmt: skip
    contact = build_contact(ContactSettings.model_validate(contact_doc), pbx, lambda: store,
                            settings.data_dir)  # fmt: skip
    app = FastAPI()
    app.include_router(contact.router(settings.api.tokens))
    try:
        await run_until_signalled([pbx, contact, HttpServer(app, "127.0.0.1", port, "api")])
    finally:
        store.close()


if __name__ == "__main__":
    main()
