"""HQ console benchmarks: server time of its pages against the JSON API, memory per user.

Usage: .venv/bin/python bench/bench_console.py [--database sqlite|postgres] [--cdrs N]
                                                 [--rounds N] [--report-rounds N] [--users N]

The aggregator's app is built by its composition root over a table of ``--cdrs``
generated CDRs (20 sites, 30 days), in SQLite or in a private PostgreSQL server
(tests/pg.py, as the other PostgreSQL benchmarks), seeded inside the database in one
statement with the rollups ingest would have kept (bench_sync.py ``seed_cdrs``:
generate_series on PostgreSQL). The app is driven in process (no sockets): each figure is
the median time from request to complete response body.

1. The CDR search page (50 rows) against ``GET /api/v1/cdrs`` with the same filters and
   page size: one site and number over the month, and one site over the month.
2. The report page (month, every site: day and hour summaries, per site, trunk and
   extension tables, the charts' data) against the JSON API calls giving the same
   figures (summary by day and by hour, by-extension, by-trunk), then each of those
   report calls timed alone.
3. Memory per signed-in user: Python heap (tracemalloc) after ``--users`` sign-ins through
   the sign-in form, divided by the number of users.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient

from aggregator import service
from aggregator.settings import AggregatorSettings
from bench.bench_sync import seed_cdrs
from drivers.daemon.http import HttpServer
from tests.pg import postgres_server

TOKEN = "bench-console-admin-token"
MONTH = {"from": "2025-11-01", "to": "2025-12-01"}
SEARCHES = {
    "site and number": {"site": "site-3", "number": "+4917000042", **MONTH},
    "site": {"site": "site-3", **MONTH},
}
REPORT_CALLS = (
    ("/api/v1/reports/summary", {"group": "day"}),
    ("/api/v1/reports/summary", {"group": "hour"}),
    ("/api/v1/reports/by-extension", {}),
    ("/api/v1/reports/by-trunk", {}),
)


def median_ms(call: Callable[[], Any], rounds: int) -> float:
    """Median wall time of ``call`` in milliseconds, after one warm-up call."""
    call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def signed_in(client: TestClient) -> None:
    """Sign ``client`` in through the form, as a browser does."""
    form = client.get("/console/sign-in")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf is not None
    answer = client.post(
        "/console/sign-in",
        data={"token": TOKEN, "csrf_token": csrf.group(1)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def ok(
    client: TestClient, path: str, headers: dict[str, str] | None = None, **params: Any
) -> Callable[[], Any]:
    def call() -> Any:
        answer = client.get(path, params=params, headers=headers)
        assert answer.status_code == 200, answer.text[:300]
        return answer.content

    return call


def page_ratios(client: TestClient, api: dict[str, str], rounds: int, report_rounds: int) -> None:
    for name, params in SEARCHES.items():
        page = median_ms(ok(client, "/console/cdrs", **params), rounds)
        json = median_ms(ok(client, "/api/v1/cdrs", api, **params, limit=50), rounds)
        print(f"CDR search ({name}): page {page:.1f} ms, API {json:.1f} ms, {page / json:.2f}x")
    page = median_ms(ok(client, "/console/reports", **MONTH), report_rounds)

    def api_calls() -> None:
        for path, params in REPORT_CALLS:
            answer = client.get(path, params={**MONTH, **params}, headers=api)
            assert answer.status_code == 200, answer.text[:300]

    json = median_ms(api_calls, report_rounds)
    print(f"report page: {page:.1f} ms, the 4 API calls {json:.1f} ms, {page / json:.2f}x")
    for path, params in REPORT_CALLS:
        alone = median_ms(ok(client, path, api, **MONTH, **params), report_rounds)
        print(f"  {path} {params or ''}: {alone:.1f} ms")


def memory_per_user(app: Any, users: int) -> None:
    clients = [TestClient(app) for _ in range(users)]
    signed_in(clients[0])
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for client in clients[1:]:
        signed_in(client)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"memory per signed-in user: {(after - before) / (users - 1):.0f} bytes (heap)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--cdrs", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--report-rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=1000)
    args = parser.parse_args()
    server = postgres_server() if args.database == "postgres" else nullcontext(None)
    with (
        tempfile.TemporaryDirectory(prefix="callmesh-bench-") as base,
        server as url,
        started_database(base, url) as (database, http),
    ):
        start = time.perf_counter()
        seed_cdrs(database.engine(), args.cdrs, 20)
        seconds = time.perf_counter() - start
        print(f"seeded {args.cdrs:,} CDRs in {seconds:.0f} s ({args.database})")
        with TestClient(http.app) as client:
            signed_in(client)
            api = {"Authorization": f"Bearer {TOKEN}"}
            page_ratios(client, api, args.rounds, args.report_rounds)
        memory_per_user(http.app, args.users)


@contextmanager
def started_database(
    base: str, url: str | None
) -> Iterator[tuple[service.DatabaseComponent, HttpServer]]:
    """The composition root's database (started) and HTTP app over ``url`` (None: SQLite)."""
    settings = AggregatorSettings.model_validate(
        {
            "data_dir": base,
            "http": {"port": 0},
            "database": {"url": url},
            "api": {"tokens": [{"name": "bench", "token": TOKEN, "role": "admin"}]},
        }
    )
    components = service.build(settings)
    database = next(c for c in components if isinstance(c, service.DatabaseComponent))
    http = next(c for c in components if isinstance(c, HttpServer))
    asyncio.run(database.start())
    try:
        yield database, http
    finally:
        asyncio.run(database.stop())


if __name__ == "__main__":
    main()
