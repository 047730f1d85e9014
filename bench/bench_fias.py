"""FIAS link: resync of 2,000 rooms, check-ins/s, and postings/s against a raw socket writer.

Usage: .venv/bin/python bench/bench_fias.py [--rooms N] [--postings N] [--check-ins N] [--rounds N]

Both sides talk to the same PMS simulator process (``callmesh pms-simulator``, 70 % of the rooms
occupied) over loopback TCP.

- Resync: the appliance's PMS link service on a fresh store; from the LinkUp that makes it send
  DR to the DE's room snapshot stored in LMDB.
- Check-ins: after the resync, the simulator writes N online GI records for new rooms in one
  burst (``/link/raw``); from that request to the last one applied to the rooms the routing
  chain reads and committed to LMDB (each record its own fsync'd commit of the room it
  changed).
- Postings: N postings queued in the store before the service starts; from LinkUp to the last
  final answer, one outstanding at a time (answered postings leave the store in batched
  fsync'd commits beside the traffic). The raw writer sends the same PS records on a plain
  blocking socket, one at a time, waiting for each PA, with no store, right after the link
  in the same round. The ratio is the median of the rounds' link / raw (1.0 = no overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from appliance.hotel.pms_link import PmsLinkService
from appliance.hotel.postings import Posting, PostingQueue
from appliance.hotel.rooms import RoomBook
from appliance.hotel.settings import PmsSettings
from appliance.hotel.wiring import build_client
from appliance.store import Store
from drivers.fias.grammar import RecordGI, RecordPS
from drivers.fias.link import LinkEvent, LinkUp, ResyncCompleted
from drivers.fias.protocol import FiasProtocol

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def hotel(rooms: int, workdir: Path) -> Iterator[tuple[int, str]]:
    """A simulator process with ``rooms`` rooms, 70 % checked in; yields its FIAS port and
    its control URL."""
    info = workdir / "pms.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli.main", "pms-simulator",
         "--rooms", f"0001-{rooms:04d}", "--json", str(info)],
        stdout=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (info.exists() and info.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.1)
        ports = json.loads(info.read_text())
        with httpx.Client(base_url=ports["control"], timeout=10) as control:
            for n in range(1, rooms + 1):
                if n % 10 < 7:
                    control.post(f"/rooms/{n:04d}/check-in", json={"name": f"Guest {n}, Mr."})
        yield ports["fias_port"], ports["control"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        info.unlink(missing_ok=True)


def charge(n: int) -> Posting:
    values = {"PT": "C", "TA": 100 + n, "DA": "261207", "TI": "101500", "DD": "0049301234567"}
    return Posting.of(f"{n % 100 + 1:04d}", values)


async def run_link(port: int, store: Store, until_pending_zero: bool) -> tuple[float, float]:
    """Seconds from LinkUp to the resync applied, and to every posting answered."""
    settings = PmsSettings(port=port, resync_when_empty=not until_pending_zero)
    client = build_client(settings, "UTC")
    service = PmsLinkService(settings, lambda: store, client, RoomBook({}, "international"))
    handler = client.on_event
    marks: dict[str, float] = {}
    done = asyncio.Event()

    def timed(event: LinkEvent) -> None:
        if isinstance(event, LinkUp):
            marks["up"] = time.perf_counter()
        handler(event)
        if isinstance(event, ResyncCompleted):
            marks["resynced"] = time.perf_counter()
            done.set()
        if until_pending_zero and service.sender().pending() == 0 and "up" in marks:
            marks["posted"] = time.perf_counter()
            done.set()

    client.on_event = timed
    await service.start()
    try:
        await asyncio.wait_for(done.wait(), 600)
    finally:
        await service.stop()
    end = marks.get("posted", marks.get("resynced", 0.0))
    return end - marks["up"], end - marks["up"]


async def run_check_ins(port: int, control: str, store: Store, count: int) -> float:
    """Seconds from a burst of ``count`` GI records to the last one applied and stored."""
    settings = PmsSettings(port=port, resync_when_empty=True)
    client = build_client(settings, "UTC")
    rooms = RoomBook({}, "international")
    service = PmsLinkService(settings, lambda: store, client, rooms)
    handler = client.on_event
    resynced, applied = asyncio.Event(), asyncio.Event()
    last = f"C{count - 1:05d}"

    def on_event(event: LinkEvent) -> None:
        handler(event)
        if isinstance(event, ResyncCompleted):
            resynced.set()
        if isinstance(event, RecordGI) and event.room == last and rooms.room(last).occupied:
            applied.set()

    client.on_event = on_event
    burst = "".join(f"\x02GI|RNC{n:05d}|G#{90_000 + n}|GNGuest {n}|GLEA|GSN|\x03"
                    for n in range(count))  # fmt: skip
    await service.start()
    try:
        await asyncio.wait_for(resynced.wait(), 600)
        start = time.perf_counter()
        async with httpx.AsyncClient(base_url=control, timeout=30) as http:
            (await http.post("/link/raw", json={"data": burst})).raise_for_status()
        await asyncio.wait_for(applied.wait(), 600)
        return time.perf_counter() - start
    finally:
        await service.stop()


def raw_writer(port: int, count: int, first: int) -> float:
    """Seconds to post ``count`` PS one at a time on a plain socket, waiting for each PA."""
    protocol = FiasProtocol()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"\x02LA|DA261207|TI101500|\x03")
        records = [charge(n).record(first + n) for n in range(count)]
        start = time.perf_counter()
        for record in records:
            sock.sendall(protocol.send(record))
            while not _answered(protocol, record):
                protocol.receive_data(sock.recv(65536))
        return time.perf_counter() - start


def _answered(protocol: FiasProtocol, record: RecordPS) -> bool:
    while (event := protocol.next_event()) is not None:
        if event.record_id == "PA" and event.get("P#") == record.get("P#"):
            return True
    return False


def one_round(
    rooms: int, postings: int, check_ins: int, base: int, workdir: Path
) -> tuple[float, float, float, float]:
    with hotel(rooms, workdir) as (port, control):
        store = Store.open(workdir / f"resync-{base}", map_size_mb=256)
        resync, _ = asyncio.run(run_link(port, store, False))
        store.close()
        store = Store.open(workdir / f"check-ins-{base}", map_size_mb=256)
        checked_in = asyncio.run(run_check_ins(port, control, store, check_ins))
        store.close()
        store = Store.open(workdir / f"postings-{base}", map_size_mb=256)
        queue = PostingQueue(store)
        for n in range(postings):
            queue.add(charge(n))
        _, link = asyncio.run(run_link(port, store, True))
        store.close()
        raw = raw_writer(port, postings, 10_000_000 + base)
    return resync, postings / link, postings / raw, check_ins / checked_in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rooms", type=int, default=2000)
    parser.add_argument("--postings", type=int, default=2000)
    parser.add_argument("--check-ins", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = [
            one_round(args.rooms, args.postings, args.check_ins, n * args.postings, Path(tmp))
            for n in range(args.rounds)
        ]
    resync = statistics.median(r[0] for r in results)
    link = statistics.median(r[1] for r in results)
    raw = statistics.median(r[2] for r in results)
    ratio = statistics.median(r[1] / r[2] for r in results)
    check_ins = statistics.median(r[3] for r in results)
    print(f"resync of {args.rooms} rooms (DR to DE applied): {resync * 1000:.0f} ms (median)")
    print(
        f"check-ins applied and stored, {args.check_ins} GI in a burst on top of "
        f"{args.rooms} rooms: {check_ins:.0f}/s (median)"
    )
    print(f"{'postings/s (medians)':<28}{'link':>10}{'raw socket':>12}{'ratio':>8}")
    print(f"{'one outstanding, PA each':<28}{link:>10.0f}{raw:>12.0f}{ratio:>8.2f}")
    rounds = ", ".join(f"{r[1]:.0f}/{r[2]:.0f}" for r in results)
    print(f"per round, link/raw postings/s: {rounds}")


if __name__ == "__main__":
    main()
