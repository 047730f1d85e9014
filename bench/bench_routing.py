"""Cross-site routing benchmarks at company scale: 10,000 sites, 1,000,000 extensions.

Usage: .venv/bin/python bench/bench_routing.py [--sites N] [--per-site N] [--lookups N]

1. HQ: validate and compile the directory, vs building a plain dict of every extension;
   a directory write through the store (SQLite): the first, then a one-extension change.
2. Appliance: build (validate + index) one site's table, its memory and msgpack size.
3. Route lookup per call (mean, p99) over a mix of local, other-site (flat plan),
   prefix-dialled and rule-routed numbers, vs a plain dict lookup of the same numbers.
4. A one-extension change: update size and apply time (changes applied, table rebuilt,
   stored in LMDB) vs the full snapshot's size and apply time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.directory.compile import compile_tables
from aggregator.directory.model import Directory
from aggregator.directory.store import DirectoryStore
from aggregator.directory.validate import validate
from aggregator.store.db import create_engine
from appliance.routing.service import RoutingService
from appliance.routing.table import RoutingTable
from appliance.store import Store
from bench import harness
from drivers.sync.protocol import Snapshot, Update, encode
from drivers.sync.routing_changes import diff

FIRST_EXTENSION = 1_000_000


def company(sites: int, per_site: int, extra: dict[int, list[str]] | None = None) -> Directory:
    """``sites`` sites, each with a range of ``per_site`` 7-digit extensions and a code."""
    extra = extra or {}
    doc: dict[str, Any] = {
        "plan": {"flat": True, "site_prefix": "8"},
        "sites": [
            {
                "id": f"s{i:05d}",
                "sip_address": f"10.{i // 250}.{i % 250}.10",
                "timezone": "Europe/Berlin",
                "code": f"{i:04d}",
                "ranges": [{"first": str(first), "last": str(first + per_site - 1)}],
                "extensions": extra.get(i, []),
            }
            for i in range(sites)
            for first in [FIRST_EXTENSION + i * per_site]
        ],
        "trunks": [{"id": "hq-sip", "site": "s00000", "numbers": ["+4930100", "+4930101"]}],
        "rules": [
            {"id": "national", "prefix": "0", "priority": 20, "targets": [{"trunk": "hq-sip"}]},
            {
                "id": "international",
                "prefix": "00",
                "priority": 10,
                "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"]}],
                "targets": [{"trunk": "hq-sip", "strip": 2, "prepend": "+"}],
            },
        ],
    }
    return Directory.model_validate(doc)


def timed(func: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = func()
    return result, time.perf_counter() - start


def per_call(func: Callable[[str], Any], numbers: list[str]) -> tuple[float, float]:
    """Mean and p99 in microseconds, each call timed on its own."""
    clock = time.perf_counter_ns
    samples = []
    for number in numbers:
        start = clock()
        func(number)
        samples.append(clock() - start)
    samples.sort()
    return statistics.fmean(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def measured_memory(build: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    built = build()
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return built, size


def dialled_mix(sites: int, per_site: int, count: int) -> list[str]:
    rng = random.Random(7)
    last = FIRST_EXTENSION + sites * per_site - 1
    numbers = []
    for n in range(count):
        kind = n % 4
        if kind == 0:
            numbers.append(str(rng.randint(FIRST_EXTENSION, FIRST_EXTENSION + per_site - 1)))
        elif kind == 1:
            numbers.append(str(rng.randint(FIRST_EXTENSION, last)))
        elif kind == 2:
            site = rng.randrange(sites)
            numbers.append(f"8{site:04d}{FIRST_EXTENSION + site * per_site + 3}")
        else:
            numbers.append(f"00{rng.randint(10**9, 10**10)}")
    return numbers


def loaded(packed: bytes) -> tuple[dict[str, Any], RoutingTable]:
    """The snapshot as the appliance holds it: decoded entries and the built table."""
    data = msgpack.unpackb(packed, raw=False)
    return data, RoutingTable(1, data)


def apply_times(data: dict[str, Any], delta: dict[str, Any]) -> tuple[float, float]:
    """Best of 3: full snapshot vs update, each validated, indexed and stored in LMDB."""
    full, update = [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "store", 1024)
        try:
            service = RoutingService(lambda: store)
            asyncio.run(service.start())
            for round_ in range(3):
                base = 2 * round_ + 1
                _, seconds = timed(functools.partial(service.apply_snapshot, base, data))
                full.append(seconds)
                update_call = functools.partial(service.apply_update, base + 1, base, delta)
                result, seconds = timed(update_call)
                assert result.outcome == "applied", result
                update.append(seconds)
        finally:
            store.close()
    return min(full), min(update)


def publish_times(first: Directory, second: Directory) -> tuple[float, float]:
    """A directory write through the HQ store: the first one, then a one-extension change."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/aggregator.db")
        try:
            store = DirectoryStore(lambda: engine)
            _, first_s = timed(lambda: store.change(lambda _: first))
            published, change_s = timed(lambda: store.change(lambda _: second))
            assert len(published.versions) == len(second.sites)
        finally:
            engine.dispose()
    return first_s, change_s


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--per-site", type=int, default=100)
    parser.add_argument("--lookups", type=int, default=200_000)
    harness.run(measure, parser.parse_args())


def measure(args: argparse.Namespace) -> None:
    """Every measure in the order of the module's docstring, each kept as it is taken."""
    sites, per_site = args.sites, args.per_site
    print(f"{sites:,} sites, {sites * per_site:,} extensions ({per_site} per site, as ranges)")

    directory, build_s = timed(lambda: company(sites, per_site))
    _, validate_s = timed(lambda: validate(directory))
    tables, compile_s = timed(lambda: compile_tables(directory))
    flat_map, flat_s = timed(
        lambda: {str(FIRST_EXTENSION + n): f"s{n // per_site:05d}" for n in range(sites * per_site)}
    )
    print("\n1. HQ")
    print(f"   parse directory document       {build_s * 1000:9.0f} ms")
    print(f"   validate (overlaps, loops, ...) {validate_s * 1000:8.0f} ms")
    print(f"   compile all {sites:,} site tables  {compile_s * 1000:8.0f} ms")
    print(f"   baseline: dict of every extension {flat_s * 1000:6.0f} ms")
    harness.record("compile all site tables / dict baseline", f"{compile_s:.3f} s / {flat_s:.3f} s")
    changed_directory = company(sites, per_site, {sites // 2: ["9999999"]})
    first_s, change_s = publish_times(directory, changed_directory)
    print(
        f"   PUT whole directory on SQLite     {first_s * 1000:6.0f} ms (validate, compile, store)"
    )
    print(f"   PUT with one extension more       {change_s * 1000:6.0f} ms (every site bumped)")
    harness.record(
        "directory PUT first / one more extension", f"{first_s:.3f} s / {change_s:.3f} s"
    )

    data = dict(tables["s00000"])
    packed = msgpack.packb(data, use_bin_type=True)
    (_, table), table_bytes = measured_memory(lambda: loaded(packed))
    _, build_table_s = timed(lambda: RoutingTable(1, data))
    print("\n2. Appliance: one site's table")
    print(f"   entries {len(data):,}, msgpack {len(packed) / 1e6:.2f} MB")
    print(
        f"   build (validate + index) {build_table_s * 1000:.0f} ms; loaded snapshot "
        f"(entries + index) {table_bytes / 1e6:.1f} MB"
    )
    _, flat_bytes = measured_memory(lambda: dict(flat_map))
    print(f"   baseline: dict of every extension (hash table alone) {flat_bytes / 1e6:.1f} MB")

    numbers = dialled_mix(sites, per_site, args.lookups)
    routed = sum(1 for n in numbers[:1000] if table.lookup(n).routed)
    mean_us, p99_us = per_call(table.lookup, numbers)
    base_mean, base_p99 = per_call(flat_map.get, numbers)
    print(f"\n3. Lookup per call ({args.lookups:,} calls, {routed / 10:.0f}% routed)")
    print(f"   RoutingTable.lookup   mean {mean_us:6.2f} us   p99 {p99_us:6.2f} us")
    print(f"   baseline dict.get     mean {base_mean:6.2f} us   p99 {base_p99:6.2f} us")
    harness.record("lookup mean / p99 (us)", f"{mean_us:.2f} / {p99_us:.2f}")

    changed = compile_tables(changed_directory)
    delta = diff(data, changed["s00000"])
    update = encode(Update("routing", 2, 1, delta))[0]
    snapshot = encode(Snapshot("routing", 1, data))[0]
    full_s, update_s = apply_times(data, delta)
    print("\n4. One-extension change")
    print(f"   update {len(update):,} bytes, applied + stored in {update_s * 1000:.0f} ms")
    print(
        f"   baseline: full snapshot {len(snapshot):,} bytes, "
        f"applied + stored in {full_s * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
