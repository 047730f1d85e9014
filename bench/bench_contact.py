"""Contact-centre benchmarks: agent selection and the CTI event stream.

Usage: .venv/bin/python bench/bench_contact.py [--waiting N] [--agents N] [--rounds N]
       [--strategy longest-idle|ring-all|round-robin|fewest-calls|skills]

1. Agent selection inside the appliance, with N callers waiting and M agents (each agent
   state fsync'd to LMDB, as in service): from an agent becoming available to the
   ``queue-offer`` command handed to the caller's worker, (a) an agent resuming through
   the API, (b) an agent's wrap-up ending (the timer task wakes at the deadline); vs a
   raw LMDB put + commit (each change writes one). ``--strategy`` is the queue's (for
   ``skills`` every agent has three skill levels and callers need one of them).
2. CTI: from ``publish`` to the event read by a subscriber over HTTP (SSE through
   uvicorn on loopback, httpx client); vs an asyncio.Queue hand-over in the same loop.

Not measured here: the worker's INVITE through Kamailio to the phone (about a
millisecond on loopback, bench_pbx_calls measures call set-up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi import FastAPI

from appliance.contact.routes import build_contact_router
from appliance.contact.service import ContactService
from appliance.contact.settings import ContactSettings
from appliance.store import StateStore, Store
from bench import harness
from drivers.daemon.http import HttpServer
from drivers.daemon.settings_base import ApiToken
from drivers.media.protocol import Command, QueueEvent, QueueOffer

TOKEN = "bench-token-0123456789abcdef"


class OfferClock:
    """A worker that notes when each ``queue-offer`` reaches it."""

    def __init__(self) -> None:
        self.offers: list[tuple[str, float]] = []

    def send(self, command: Command) -> bool:
        if isinstance(command, QueueOffer):
            self.offers.append((command.agent, time.perf_counter()))
        return True


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000


def settings(agents: int, wrapup_s: float, strategy: str = "longest-idle") -> ContactSettings:
    numbers: list[Any] = [str(5000 + n) for n in range(agents)]
    required = {}
    if strategy == "skills":
        numbers = [{"extension": n, "skills": {"billing": 5, "english": 1 + i % 9, "tech": 3}}
                   for i, n in enumerate(numbers)]  # fmt: skip
        required = {"skills": {"english": 1}}
    queue = {"number": "700", "agents": numbers, "wrapup_s": wrapup_s, "max_wait_s": 7200,
             "ring_timeout_s": 120, "strategy": strategy, **required}  # fmt: skip
    return ContactSettings.model_validate({"queues": {"q": queue}})


async def selection(store: Store, args: argparse.Namespace, wrapup_s: float) -> ContactService:
    """A service with ``args.waiting`` callers queued and every agent paused."""
    contact = settings(args.agents, wrapup_s, args.strategy)
    service = ContactService(contact, {}, lambda _c, _f: None)
    await service.start(store)
    worker = OfferClock()
    for number in service.acd.agents:
        service.login(number)
        service.pause(number, "bench")
    for n in range(args.waiting):
        service.on_event(worker, QueueEvent(f"c{n}", "start", queue="q", caller=str(9000 + n)))
    service.bench_worker = worker  # type: ignore[attr-defined]
    return service


async def by_resume(store: Store, args: argparse.Namespace) -> list[float]:
    service = await selection(store, args, 0.0)
    worker: OfferClock = service.bench_worker  # type: ignore[attr-defined]
    agents = list(service.acd.agents)
    samples = []
    for n in range(args.rounds):
        number = agents[n % len(agents)]
        started = time.perf_counter()
        service.resume(number)
        agent, at = worker.offers[-1]
        assert agent == number
        samples.append(at - started)
        call_id = service.acd.agents[number].call_id
        service.on_event(worker, QueueEvent(call_id, "agent-ended", agent=number, answered=False))
    await service.stop()
    return samples


async def by_wrapup(store: Store, args: argparse.Namespace) -> list[float]:
    wrapup_s = 0.05
    service = await selection(store, args, wrapup_s)
    worker: OfferClock = service.bench_worker  # type: ignore[attr-defined]
    agents = list(service.acd.agents)
    samples = []
    for n in range(min(args.rounds // 5, args.waiting - 1)):
        number = agents[n % len(agents)]
        service.resume(number)
        call_id = service.acd.agents[number].call_id
        service.on_event(worker, QueueEvent(call_id, "agent-answered", agent=number))
        ended = time.perf_counter()
        service.on_event(worker, QueueEvent(call_id, "agent-ended", agent=number, answered=True))
        before = len(worker.offers)
        deadline = time.monotonic() + harness.limit(5)
        while len(worker.offers) == before:
            if time.monotonic() > deadline:
                raise harness.Incomplete("no offer after a wrap-up within 5 s")
            await asyncio.sleep(0.001)
        samples.append(worker.offers[-1][1] - (ended + wrapup_s))
        call_id = service.acd.agents[number].call_id
        service.on_event(worker, QueueEvent(call_id, "agent-ended", agent=number, answered=False))
    await service.stop()
    return samples


def raw_puts(store: Store, rounds: int) -> list[float]:
    state = StateStore(store, "bench-raw")
    samples = []
    for n in range(rounds):
        started = time.perf_counter()
        state.put(f"k{n % 50}", {"number": "5000", "state": "available", "since": time.time()})
        samples.append(time.perf_counter() - started)
    return samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def cti_latency(rounds: int) -> list[float]:
    service = ContactService(settings(1, 0.0), {}, lambda _c, _f: None)
    app = FastAPI()
    app.include_router(build_contact_router(service, [ApiToken(name="b", token=TOKEN,
                                                               role="viewer")]))  # fmt: skip
    port = free_port()
    server = HttpServer(app, "127.0.0.1", port, "bench")
    await server.start()
    sent: dict[int, float] = {}
    samples: list[float] = []
    try:
        async with httpx.AsyncClient(timeout=harness.limit(30)) as client, client.stream(
            "GET", f"http://127.0.0.1:{port}/api/v1/contact/events",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response:  # fmt: skip
            lines = response.aiter_lines()
            await anext(lines)
            for n in range(rounds):
                sent[n] = time.perf_counter()
                service.cti.publish("agent.state", n=n)
                while True:
                    line = await asyncio.wait_for(anext(lines), harness.limit(5))
                    if line.startswith("data: "):
                        got = json.loads(line[6:])["data"]["n"]
                        samples.append(time.perf_counter() - sent[got])
                        break
                await asyncio.sleep(0.005)
    finally:
        service.cti.close()
        await server.stop()
    return samples


async def queue_handover(rounds: int) -> list[float]:
    queue: asyncio.Queue[float] = asyncio.Queue()
    samples = []
    for _ in range(rounds):
        queue.put_nowait(time.perf_counter())
        samples.append(time.perf_counter() - await queue.get())
    return samples


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=100)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--strategy", default="longest-idle")
    harness.run(measure, parser.parse_args())


def measure(args: argparse.Namespace) -> None:
    """Both measures, each kept as it is taken."""
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        store = Store.open(Path(tmp) / "store", 64)
        try:
            resume = asyncio.run(by_resume(store, args))
            raw = raw_puts(store, args.rounds)
            wrapup = asyncio.run(by_wrapup(store, args))
        finally:
            store.close()
    print(f"1. Agent selection, {args.waiting} waiting, {args.agents} agents, "
          f"{args.rounds} rounds, strategy {args.strategy}")  # fmt: skip
    for name, samples in (("resume -> offer", resume), ("wrap-up end -> offer", wrapup),
                          ("raw LMDB put+commit", raw)):  # fmt: skip
        p50, p99 = percentiles(samples)
        print(f"   {name:24s} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
        harness.record(f"{name} p50 / p99 (ms)", f"{p50:.2f} / {p99:.2f}")
    cti = asyncio.run(cti_latency(args.rounds))
    base = asyncio.run(queue_handover(args.rounds))
    print(f"2. CTI publish -> subscriber, {args.rounds} events")
    for name, samples in (("SSE over HTTP", cti), ("asyncio.Queue hand-over", base)):
        p50, p99 = percentiles(samples)
        print(f"   {name:24s} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms")
        harness.record(f"{name} p50 / p99 (ms)", f"{p50:.3f} / {p99:.3f}")


if __name__ == "__main__":
    main()
