"""GSM bridge under load: N simulated modems, N concurrent GSM calls bridged to SIP, recorded.

Three phases in one run, each with N calls whose far end loops audio back (simulator
``loopback``), each call sending a 100 ms 1 kHz burst every second and timing its return:

1. raw: this process dials N modems of a separate simulator itself (ModemDriver, AT only)
   and reads/writes their PCM ttys on a 20 ms clock: the simulator's PCM loop alone.
2. bridged: the whole sim-gateway appliance (Kamailio, rtpengine recording every call,
   GSM media workers, drivers) with N pjsua2 probe calls (bench/gsm_probe.py, 4 per
   process) dialling out through the GSM trunk group.
3. SIP echo: the same probes call the media workers' echo service (``*43``): the SIP and
   rtpengine path without GSM.

Bridge latency (one way): at most (bridged - SIP echo) / 2, which still holds the simulated
modem's loopback; less the raw loop's round trip (a reader on a 20 ms clock, like the
bridge) it is what the bridge adds beyond that clock. Frame loss is the
GSM links' underruns, trims and uplink drops between two readings of
``GET /api/v1/gsm/channels`` in the steady phase. CPU and PSS per GSM worker and total.

    .venv/bin/python bench/bench_gsm_bridge.py [--calls 16] [--seconds 20]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import math
import os
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from bench.bench_modem_support import ROOT, TICKS, SimulatorProcess
from bench.bench_pbx_calls import cpu_ticks, pss_kb
from drivers.media.pcm import open_tty
from drivers.modem import CallEvent, CallState, ModemConfig, ModemDriver

TOKEN = "bench-token-0123456789abcdef"
PASSWORD = "bench-secret-"
FRAME = 320
BURST_FRAMES, PERIOD_FRAMES, THRESHOLD = 5, 50, 3000
BURST = b"".join(
    int(8000 * math.sin(2 * math.pi * 1000 * n / 8000)).to_bytes(2, "little", signed=True)
    for n in range(FRAME // 2 * BURST_FRAMES)
)


def pids_with(needle: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if needle in Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry))
    return found


def summary(rtts: list[float]) -> str:
    if not rtts:
        return "no bursts came back"
    ordered = sorted(rtts)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return f"median {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms (n={len(ordered)})"


# -- phase 1: the simulator's PCM loop alone -------------------------------------------


def raw_clock(fds: list[int], seconds: float, rtts: list[float], stop: threading.Event) -> None:
    """Write bursts/silence to every tty on a 20 ms clock; time each burst's return."""
    sent: list[int | None] = [None] * len(fds)
    buffers = [bytearray() for _ in fds]
    start = time.monotonic()
    for tick in range(int(seconds * 50)):
        if stop.is_set():
            return
        phase = tick % PERIOD_FRAMES
        for i, fd in enumerate(fds):
            if phase == 0:
                sent[i] = tick
            out = BURST[phase * FRAME : (phase + 1) * FRAME] if phase < BURST_FRAMES else None
            with contextlib.suppress(BlockingIOError):
                os.write(fd, out or bytes(FRAME))
            with contextlib.suppress(BlockingIOError):
                buffers[i] += os.read(fd, 65536)
            while len(buffers[i]) >= FRAME:
                frame, buffers[i][:] = bytes(buffers[i][:FRAME]), buffers[i][FRAME:]
                first = sent[i]
                if first is None:
                    continue
                for index, value in enumerate(array.array("h", frame)):
                    if abs(value) > THRESHOLD:
                        rtts.append((tick - first) * 20.0 + index / 8.0)
                        sent[i] = None
                        break
        time.sleep(max(0.0, start + (tick + 1) * 0.02 - time.monotonic()))


async def raw_phase(work: Path, calls: int, seconds: float) -> dict[str, Any]:
    (work / "raw").mkdir()
    sim = SimulatorProcess(work / "raw", "--count", str(calls))
    try:
        modems = sim.document["modems"]
        async with httpx.AsyncClient(base_url=sim.document["control"], timeout=10) as client:
            for i in range(calls):
                await client.post(f"/modems/{i}/far-end", json={"answer_after": 0.2})
                await client.post(f"/modems/{i}/loopback", json={"on": True})
        drivers = [ModemDriver(ModemConfig(port=m["at_by_id"], open_voice=False)) for m in modems]
        await asyncio.gather(*(d.start() for d in drivers))
        await asyncio.gather(*(d.wait_registered(30) for d in drivers))
        streams = [d.subscribe() for d in drivers]
        await asyncio.gather(*(d.dial(f"+1555{i:04d}") for i, d in enumerate(drivers)))

        def active(event: object) -> bool:
            return isinstance(event, CallEvent) and event.state is CallState.ACTIVE

        await asyncio.gather(*(s.wait_for(active, 30) for s in streams))
        voices = [d.voice_path() for d in drivers]
        fds = [open_tty(v[0]) for v in voices if v is not None]
        await asyncio.sleep(1.0)
        rtts: list[float] = []
        stop = threading.Event()
        before, started = sim.cpu_seconds(), time.monotonic()
        own_before = time.process_time()
        try:
            await asyncio.to_thread(raw_clock, fds, seconds, rtts, stop)
        finally:
            stop.set()
        wall = time.monotonic() - started
        sim_cpu = 100 * (sim.cpu_seconds() - before) / wall
        own_cpu = 100 * (time.process_time() - own_before) / wall
        for fd in fds:
            os.close(fd)
        await asyncio.gather(*(d.hangup() for d in drivers), return_exceptions=True)
        await asyncio.gather(*(d.stop() for d in drivers))
        return {"rtts": rtts, "sim_cpu": sim_cpu, "loop_cpu": own_cpu}
    finally:
        sim.stop()


# -- phases 2 and 3: the appliance -----------------------------------------------------


class Appliance:
    """The sim-gateway appliance with its own simulator, as processes."""

    def __init__(self, work: Path, calls: int) -> None:
        self.work = work
        self.calls = calls
        (work / "gw").mkdir()
        self.sim = SimulatorProcess(work / "gw", "--count", str(calls))
        modems = self.sim.document["modems"]
        for i in range(calls):
            httpx.post(f"{self.sim.document['control']}/modems/{i}/loopback", json={"on": True})
            httpx.post(
                f"{self.sim.document['control']}/modems/{i}/far-end", json={"answer_after": 0.2}
            )
        self.users = [str(3000 + i) for i in range(calls)]
        ports = iter(range(21000 + (os.getpid() % 200) * 40, 65000, 3))
        self.sip_port, self.http_port = next(ports), next(ports)
        rtp = 30000 + (os.getpid() % 100) * 200
        config = {
            "site_id": "bench-gw",
            "profile": "sim-gateway",
            "data_dir": str(work / "data"),
            "http": {"host": "127.0.0.1", "port": self.http_port},
            "log": {"level": "info"},
            "api": {"tokens": [{"name": "bench", "token": TOKEN}]},
            "sip": {
                "domain": "bench.local",
                "extensions": [
                    {"number": u, "password": PASSWORD + u, "name": f"Probe {u}"}
                    for u in self.users
                ],
            },
            "gateway": {
                "ready_timeout_s": 30,
                "modems": [{"channel": f"gsm-{m['index']}", "port": m["at_by_id"]} for m in modems],
            },
            "sim": {"strategy": "round-robin"},
            "pbx": {
                "enabled": True,
                "sip_port": self.sip_port,
                "evapi_port": next(ports),
                "rtpengine_ng_port": next(ports),
                "route_port": next(ports),
                "pike_exempt": ["127.0.0.1"],
                "rtp_port_min": rtp,
                "rtp_port_max": rtp + 199,
                "kamailio_children": 4,
                "media": {"workers": math.ceil(calls / 4), "port_base": next(ports)},
                "gsm": {
                    "port_base": next(ports) + 10,
                    "groups": [{"name": "mobile", "channels": [f"gsm-{i}" for i in range(calls)]}],
                },
                "dialplan": {
                    "outbound": [
                        {
                            "name": "mobile",
                            "pattern": "0Z.",
                            "trunk": "mobile",
                            "strip": 1,
                            "prepend": "+49",
                        }
                    ]
                },
            },
        }
        path = work / "appliance.yaml"
        path.write_text(yaml.safe_dump(config))
        self.proc = harness.spawn(
            [sys.executable, "-m", "appliance.cli.main", "appliance", "run", "--config", str(path)],
            work / "appliance.log",
            cwd=ROOT,
        )
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{self.http_port}/api/v1",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        try:
            self._wait(lambda: sum(c["registered"] for c in self.channels()) == calls, 60)
        except BaseException:
            self.close()
            raise

    def _wait(self, ready: Any, timeout: float) -> None:
        def done() -> bool:
            if self.proc.poll() is not None:
                raise harness.Incomplete(f"appliance exited; see {self.work / 'appliance.log'}")
            with contextlib.suppress(httpx.HTTPError, KeyError):
                return bool(ready())
            return False

        harness.wait_until(
            done, timeout, f"appliance ready (log {self.work / 'appliance.log'})", 0.2
        )

    def channels(self) -> list[dict[str, Any]]:
        return list(self.api.get("/gsm/channels").json()["channels"])

    def processes(self) -> dict[str, list[int]]:
        run = str(self.work / "data" / "pbx" / "run")
        gsm = {f"gsm worker g{i}": pids_with(f"media-g{i}.json") for i in range(4)}
        return {
            **{k: v for k, v in gsm.items() if v},
            "media workers (echo)": [p for i in range(8) for p in pids_with(f"media-w{i}.json")],
            "kamailio": pids_with(f"{run}/kamailio.cfg"),
            "rtpengine": [
                p
                for p in pids_with("rtpengine")
                if run in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
            ],
            "appliance": [self.proc.pid],
            "simulator": [self.sim.proc.pid],
        }

    def close(self) -> None:
        self.api.close()
        harness.stop(self.proc, grace=30)
        self.sim.stop()


class Probes:
    """pjsua2 probe processes, 4 calls each."""

    def __init__(self, app: Appliance) -> None:
        self.procs = []
        self.sizes = []
        self._lines: dict[int, list[bytes]] = {}
        self._partial: dict[int, bytes] = {}
        for i in range(0, len(app.users), 4):
            self.sizes.append(len(app.users[i : i + 4]))
            users = ",".join(app.users[i : i + 4])
            self.procs.append(
                harness.spawn(
                    [
                        sys.executable,
                        str(ROOT / "bench" / "gsm_probe.py"),
                        "--users",
                        users,
                        "--password-prefix",
                        PASSWORD,
                        "--domain",
                        "bench.local",
                        "--proxy-port",
                        str(app.sip_port),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    cwd=ROOT,
                )
            )
        for proc in self.procs:
            self.wait(proc, lambda e: e["ev"] == "reg" and e["code"] == 200, 15)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def send(self, proc: subprocess.Popen[bytes], **cmd: Any) -> None:
        assert proc.stdin is not None
        proc.stdin.write((json.dumps(cmd) + "\n").encode())
        proc.stdin.flush()

    def wait(self, proc: subprocess.Popen[bytes], match: Any, timeout: float) -> dict[str, Any]:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + harness.limit(timeout)
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            lines = self._lines.setdefault(fd, [])
            while lines:
                line = lines.pop(0)
                if line.startswith(b"@ev "):
                    event: dict[str, Any] = json.loads(line[4:])
                    if match(event):
                        return event
                    seen.append(event)
            if not select.select([fd], [], [], 0.2)[0]:
                continue
            data = self._partial.pop(fd, b"") + os.read(fd, 65536)
            *complete, self._partial[fd] = data.split(b"\n")
            lines += complete
        raise harness.Incomplete(
            f"a probe did not answer within {harness.limit(timeout):.1f} s; saw {seen[-5:]}"
        )

    def dial(self, number: Any) -> None:
        """Every probe account calls ``number(i)``; waits until every call is confirmed."""
        index = 0
        for proc, size in zip(self.procs, self.sizes, strict=True):
            for _ in range(size):
                self.send(proc, cmd="call", to=number(index))
                index += 1
                self.wait(proc, lambda e: e.get("state") == "CONFIRMED", 20)
                time.sleep(0.1)

    def rtts(self) -> tuple[list[float], int, int]:
        rtts: list[float] = []
        sent = heard = 0
        for proc in self.procs:
            self.send(proc, cmd="report")
            report = self.wait(proc, lambda e: e["ev"] == "report", 10)
            for call in report["calls"]:
                rtts += call["rtt_ms"][2:]
                sent += call["sent"]
                heard += call["heard"]
        return rtts, sent, heard

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError):
                self.send(proc, cmd="quit")
        for proc in self.procs:
            try:
                proc.wait(harness.limit(10))
            except subprocess.TimeoutExpired:
                harness.stop(proc)


def losses(channels: list[dict[str, Any]]) -> dict[str, int]:
    keys = ("frames_out", "underruns", "trimmed", "uplink_dropped")
    return {k: sum(int((c.get("frames") or {}).get(k, 0)) for c in channels) for k in keys}


def measure(app: Appliance, probes: Probes, seconds: float) -> dict[str, Any]:
    """CPU (% of one core) and PSS per process group over ``seconds`` of steady calls."""
    groups = app.processes()
    groups["probes (load generator)"] = probes.pids()
    before = {name: cpu_ticks(pids) for name, pids in groups.items()}
    first, start = losses(app.channels()), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - start
    last = losses(app.channels())
    cpu = {n: 100 * (cpu_ticks(p) - before[n]) / TICKS / wall for n, p in groups.items()}
    pss = {name: pss_kb(pids) / 1024 for name, pids in groups.items()}
    return {"cpu": cpu, "pss": pss, "loss": {k: last[k] - first[k] for k in last}}


def bridged_phases(work: Path, calls: int, seconds: float) -> dict[str, Any]:
    app = Appliance(work, calls)
    try:
        probes = Probes(app)
        try:
            probes.dial(lambda i: f"03{i:07d}")
            time.sleep(3)
            busy = sum(1 for c in app.channels() if c["call"])
            probes.rtts()
            load = measure(app, probes, seconds)
            rtts, sent, heard = probes.rtts()
            harness.record("bridged round trip", summary(rtts))
            harness.record("bridged frames", load["loss"])
        finally:
            probes.close()
        time.sleep(3)
        probes = Probes(app)
        try:
            probes.dial(lambda i: "*43")
            time.sleep(3)
            echo_load = measure(app, probes, seconds / 2)
            echo, _, _ = probes.rtts()
        finally:
            probes.close()
        return {
            "busy": busy,
            "load": load,
            "rtts": rtts,
            "sent": sent,
            "heard": heard,
            "echo": echo,
            "echo_load": echo_load,
        }
    finally:
        app.close()


def report(args: argparse.Namespace, raw: dict[str, Any], run: dict[str, Any]) -> None:
    load = run["load"]
    gsm = {k: v for k, v in load["cpu"].items() if k.startswith("gsm worker")}
    gsm_cpu, gsm_pss = sum(gsm.values()), sum(load["pss"][k] for k in gsm)
    med = statistics.median
    bridged, echo, loop = med(run["rtts"]), med(run["echo"]), med(raw["rtts"])
    one_way = (bridged - echo - loop) / 2
    print(
        f"{args.calls} GSM calls bridged to SIP and recorded ({run['busy']} channels busy), "
        f"{args.seconds:.0f} s steady"
    )
    print("| process | CPU % of one core | PSS MiB |")
    print("|---|---:|---:|")
    for name, value in load["cpu"].items():
        print(f"| {name} | {value:.1f} | {load['pss'][name]:.0f} |")
    print(f"| **GSM workers total** | **{gsm_cpu:.1f}** | **{gsm_pss:.0f}** |")
    print(
        f"echo phase ({args.calls} SIP echo calls): media workers "
        f"{run['echo_load']['cpu']['media workers (echo)']:.1f} % of one core"
    )
    print(f"raw PCM loop: simulator {raw['sim_cpu']:.1f} %, this loop {raw['loop_cpu']:.1f} %")
    print(f"round trip, bridged: {summary(run['rtts'])}")
    print(f"round trip, SIP echo: {summary(run['echo'])}")
    print(f"round trip, raw simulator PCM loop: {summary(raw['rtts'])}")
    print(
        f"bridge latency one way, upper bound (simulated modem's loopback included): "
        f"({bridged:.1f} - {echo:.1f}) / 2 = {(bridged - echo) / 2:.1f} ms (target < 60)"
    )
    print(
        f"bridge latency one way beyond a reader on a 20 ms clock: ({bridged:.1f} - "
        f"{echo:.1f} - {loop:.1f}) / 2 = {one_way:.1f} ms"
    )
    print(f"bursts: {run['sent']} sent, {run['heard']} heard")
    print(f"GSM link frames in the steady phase: {load['loss']} (target: 0 lost)")
    print(
        f"ratios: GSM workers CPU / simulator PCM loop CPU = "
        f"{gsm_cpu / max(raw['sim_cpu'], 1e-6):.1f}; GSM workers / echo media workers CPU = "
        f"{gsm_cpu / max(run['echo_load']['cpu']['media workers (echo)'], 1e-6):.2f}"
    )


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--work", type=Path, help="keep configs and logs here (default: temp)")
    harness.run(run_phases, parser.parse_args())


def run_phases(args: argparse.Namespace) -> None:
    """The raw PCM loop, then the bridged and SIP echo phases; the report."""
    with tempfile.TemporaryDirectory(prefix="bench-gsm-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        raw = asyncio.run(bounded_raw_phase(work, args.calls, args.seconds))
        harness.record("raw PCM loop round trip", summary(raw["rtts"]))
        run = bridged_phases(work, args.calls, args.seconds)
    report(args, raw, run)


async def bounded_raw_phase(work: Path, calls: int, seconds: float) -> dict[str, Any]:
    """:func:`raw_phase` within its steady phase plus a set-up of 2 s per modem and a minute."""
    limit = harness.limit(60 + 2 * calls + seconds)
    try:
        return await asyncio.wait_for(raw_phase(work, calls, seconds), limit)
    except TimeoutError:
        raise harness.Incomplete(f"raw phase not within {limit:.1f} s") from None


if __name__ == "__main__":
    main()
