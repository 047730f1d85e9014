"""AT round-trip through the modem driver vs raw pyserial write/readline on a simulated pty.

Round-trip is the time from writing ``AT+CSQ`` to reading its final ``OK``. Two identical
simulated modems answer, one per method, and the two methods alternate command by command, so
both see the same machine load. Each command is preceded by a 30 ms gap (the driver paces
>= 20 ms after a final result, as modem manuals advise) that is not part of the measurement,
so the ratio shows the driver's own overhead.

    .venv/bin/python bench/bench_modem_at.py [--count 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import serial

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from bench.bench_modem_support import SimulatorProcess
from drivers.modem import ModemConfig, ModemDriver

GAP = 0.03
COMMAND_LIMIT_S = 0.5  # per round trip; the run's limit is this times the commands, plus setup
SETUP_S = 30


def raw_round_trip(link: serial.Serial) -> float:
    """One pyserial write + readline until OK."""
    start = time.perf_counter()
    link.write(b"AT+CSQ\r")
    while True:
        line = link.readline()
        if not line:
            raise RuntimeError("raw read timed out")
        if line.strip() == b"OK":
            return time.perf_counter() - start


async def driver_round_trip(driver: ModemDriver) -> float:
    """One ModemDriver.command (protocol core + asyncio transport)."""
    start = time.perf_counter()
    await driver.command("AT+CSQ")
    return time.perf_counter() - start


async def measure(raw_port: str, driver_port: str, count: int) -> tuple[list[float], list[float]]:
    """Alternate the two methods ``count`` times each."""
    driver = ModemDriver(ModemConfig(port=driver_port, keepalive=3600.0))
    await driver.start()
    raw: list[float] = []
    ours: list[float] = []
    try:
        with serial.Serial(raw_port, 115200, timeout=1.0) as link:
            link.write(b"ATE0\r")
            await asyncio.sleep(0.3)
            link.reset_input_buffer()
            for done in range(count):
                await asyncio.sleep(GAP)
                raw.append(raw_round_trip(link))
                await asyncio.sleep(GAP)
                ours.append(await driver_round_trip(driver))
                if done % 100 == 99:
                    harness.record("round trips so far, medians (raw, driver)", _medians(raw, ours))
    finally:
        await driver.stop()
    return raw, ours


def _medians(raw: list[float], ours: list[float]) -> str:
    return (
        f"{len(raw)} commands, {statistics.median(raw) * 1000:.3f} ms, "
        f"{statistics.median(ours) * 1000:.3f} ms"
    )


async def bounded(raw_port: str, driver_port: str, count: int) -> tuple[list[float], list[float]]:
    """:func:`measure` within a limit derived from the number of commands."""
    seconds = harness.limit(SETUP_S + 2 * count * (GAP + COMMAND_LIMIT_S))
    try:
        return await asyncio.wait_for(measure(raw_port, driver_port, count), seconds)
    except TimeoutError:
        raise harness.Incomplete(f"{count} round trips each not within {seconds:.1f} s") from None


def main() -> None:
    parser = harness.parser("AT round trip: driver vs raw pyserial")
    parser.add_argument("--count", type=int, default=1000, help="commands per method")
    harness.run(run, parser.parse_args())


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sim = SimulatorProcess(Path(tmp), "--count", "2")
        try:
            modems = sim.document["modems"]
            time.sleep(1.0)
            raw, ours = asyncio.run(bounded(modems[0]["at"], modems[1]["at_by_id"], args.count))
        finally:
            sim.stop()
    raw_ms, our_ms = statistics.median(raw) * 1000, statistics.median(ours) * 1000
    print(f"AT+CSQ round trip, median of {args.count} each (alternating):")
    print(f"  raw pyserial write/readline : {raw_ms:.3f} ms (p95 {_p95(raw):.3f} ms)")
    print(f"  callmesh ModemDriver        : {our_ms:.3f} ms (p95 {_p95(ours):.3f} ms)")
    print(f"  ratio driver/raw            : {our_ms / raw_ms:.2f} (target <= 1.2)")


def _p95(samples: list[float]) -> float:
    return sorted(samples)[int(len(samples) * 0.95)] * 1000


if __name__ == "__main__":
    main()
