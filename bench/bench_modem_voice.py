"""Driver-side CPU and memory for many modems: idle, and with every modem streaming voice.

The modems are simulated in a child process (its CPU is reported separately, not counted).
This process runs one ModemDriver per modem and, while streaming, a thread that plays the
pjsua2 conference bridge: every 20 ms it pops one downlink frame from and pushes one uplink
frame to each voice port, as ``AudioMediaPort`` callbacks would.

    .venv/bin/python bench/bench_modem_voice.py [--modems 32] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from bench.bench_modem_support import SimulatorProcess, own_cpu, rss_mib
from drivers.modem import CallEvent, CallState, ModemConfig, ModemDriver, VoicePort

SETUP_S = 120  # start, register and connect every modem, and hang up


def bridge(ports: list[VoicePort], stop: threading.Event) -> None:
    """The conference-bridge clock: one pop and one push per port every 20 ms."""
    deadline = time.monotonic()
    while not stop.is_set():
        for port in ports:
            port.push_frame(port.pop_frame())
        deadline += 0.02
        time.sleep(max(0.0, deadline - time.monotonic()))


async def cpu_share(seconds: float) -> float:
    """Percent of one core this process used over ``seconds`` of wall time."""
    start_cpu, start = own_cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    return 100 * (own_cpu() - start_cpu) / (time.monotonic() - start)


async def start_drivers(modems: list[dict[str, str]]) -> list[ModemDriver]:
    drivers = [ModemDriver(ModemConfig(port=m["at_by_id"])) for m in modems]
    await asyncio.gather(*(d.start() for d in drivers))
    await asyncio.gather(*(d.wait_registered(30.0) for d in drivers))
    return drivers


async def connect_calls(drivers: list[ModemDriver], control: str) -> None:
    async with httpx.AsyncClient(base_url=control, timeout=10) as client:
        for index in range(len(drivers)):
            await client.post(f"/modems/{index}/far-end", json={"answer_after": 0.2})
            await client.post(f"/modems/{index}/tone", json={"hz": 300 + 10 * index})
    streams = [d.subscribe() for d in drivers]
    await asyncio.gather(*(d.dial(f"+1555000{i:04d}") for i, d in enumerate(drivers)))

    def active(event: object) -> bool:
        return isinstance(event, CallEvent) and event.state is CallState.ACTIVE

    await asyncio.gather(*(s.wait_for(active, 30.0) for s in streams))


async def run(document: dict[str, object], seconds: float, sim: SimulatorProcess) -> None:
    modems = document["modems"]
    assert isinstance(modems, list)
    drivers = await start_drivers(modems)
    await asyncio.sleep(1.0)
    idle = await cpu_share(seconds)
    idle_rss = rss_mib()
    harness.record("idle", f"{idle:.1f} % of one core, RSS {idle_rss:.0f} MiB")
    await connect_calls(drivers, str(document["control"]))
    ports = [d.voice for d in drivers if d.voice is not None]
    await asyncio.sleep(1.0)
    stop = threading.Event()
    clock = threading.Thread(target=bridge, args=(ports, stop))
    clock.start()
    sim_before, frames_before = sim.cpu_seconds(), sum(p.counters.frames_in for p in ports)
    overruns_before = sum(p.counters.overruns_in + p.counters.overruns_out for p in ports)
    try:
        streaming = await cpu_share(seconds)
    finally:
        stop.set()
        clock.join(5)
    sim_share = 100 * (sim.cpu_seconds() - sim_before) / seconds
    frames = sum(p.counters.frames_in for p in ports) - frames_before
    stalls = sum(p.counters.write_stalls for p in ports)
    overruns = sum(p.counters.overruns_in + p.counters.overruns_out for p in ports)
    overruns -= overruns_before
    await asyncio.gather(*(d.hangup() for d in drivers))
    await asyncio.gather(*(d.stop() for d in drivers))
    print(f"{len(drivers)} modems, driver side (this process), {seconds:.0f} s per phase:")
    print(f"  idle       : {idle:5.1f} % of one core, RSS {idle_rss:.0f} MiB")
    print(f"  streaming  : {streaming:5.1f} % of one core, RSS {rss_mib():.0f} MiB (target < 30 %)")
    print(
        f"  downlink   : {frames / seconds / len(ports):.1f} frames/s per port (50 expected), "
        f"{overruns} overruns, {stalls} write stalls"
    )
    print(f"  simulator  : {sim_share:5.1f} % of one core (separate process, not counted)")


async def bounded(document: dict[str, object], seconds: float, sim: SimulatorProcess) -> None:
    """:func:`run` within its two phases plus the set-up time."""
    limit = harness.limit(SETUP_S + 2 * seconds)
    try:
        await asyncio.wait_for(run(document, seconds, sim), limit)
    except TimeoutError:
        raise harness.Incomplete(f"both phases not within {limit:.1f} s") from None


def main() -> None:
    parser = harness.parser("CPU and RSS of the driver side, many modems")
    parser.add_argument("--modems", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    harness.run(measure, parser.parse_args())


def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sim = SimulatorProcess(Path(tmp), "--count", str(args.modems))
        try:
            asyncio.run(bounded(sim.document, args.seconds, sim))
        finally:
            sim.stop()


if __name__ == "__main__":
    main()
