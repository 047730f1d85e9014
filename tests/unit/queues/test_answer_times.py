"""The answer-time distribution: waits bucketed at ingest, once per CDR, read per local day."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from aggregator import reports
from aggregator.queues.answer_times import answer_time_report
from aggregator.queues.report import QueueQuery
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import create_engine
from aggregator.store.queue_rollup import BUCKET_COLUMNS, wait_bucket
from aggregator.store.schema import queue_rollup, queue_rollup_daily
from tests.queue_cdrs import QueuedCall
from tests.unit.queues.conftest import BRANCH, HQ
from tests.unit.queues.test_queue_report import CALLS

BOUNDS = (0.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


@pytest.mark.parametrize(
    ("wait_s", "bucket"),
    [(0.0, 0), (4.99, 0), (5.0, 1), (9.9, 1), (10.0, 2), (19.99, 2), (20.0, 3), (30.0, 4),
     (59.9, 4), (60.0, 5), (119.99, 5), (120.0, 6), (604_800.0, 6)],
)  # fmt: skip
def test_a_wait_falls_in_the_bucket_whose_lower_bound_it_reaches(
    wait_s: float, bucket: int
) -> None:
    assert wait_bucket(wait_s) == bucket


def by_hand(calls: list[QueuedCall]) -> dict[str, int]:
    """Answered calls by bucket, counted from the waits themselves."""
    counts = dict.fromkeys(BUCKET_COLUMNS, 0)
    for c in calls:
        if c.outcome == "answered":
            index = sum(c.wait_s >= low for low in BOUNDS) - 1
            counts[BUCKET_COLUMNS[index]] += 1
    return counts


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path_factory.mktemp('answer') / 'agg.db'}")
    store = CdrStore(eng)
    docs = [(c.n, c.cdr()) for c in CALLS]
    for first in range(0, len(docs), 70):
        store.ingest("site-a", docs[first : first + 100])  # overlapping: redeliveries
    store.ingest("site-b", docs[:10])
    yield eng
    eng.dispose()


def bucket_sums(engine: sa.Engine, table: sa.Table, site: str) -> dict[str, int]:
    query = sa.select(*(sa.func.sum(table.c[n]) for n in BUCKET_COLUMNS))
    with engine.connect() as conn:
        row = conn.execute(query.where(table.c.site_id == site)).one()
    return {n: int(v) for n, v in zip(BUCKET_COLUMNS, row, strict=True)}


def test_the_rollups_hold_the_distribution_once_despite_redelivery(engine: sa.Engine) -> None:
    assert bucket_sums(engine, queue_rollup, "site-a") == by_hand(CALLS)
    assert bucket_sums(engine, queue_rollup_daily, "site-a") == by_hand(CALLS)
    before = bucket_sums(engine, queue_rollup, "site-b")
    again = CdrStore(engine).ingest("site-b", [(c.n, c.cdr()) for c in CALLS[:10]])
    assert again.duplicates == 10
    assert bucket_sums(engine, queue_rollup, "site-b") == before == by_hand(CALLS[:10])


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_each_local_day_equals_a_hand_count(engine: sa.Engine, tz: str) -> None:
    zone = reports.zone(tz)
    start, end = reports.parse_time("2025-11-20", zone), reports.parse_time("2025-12-01", zone)
    with engine.connect() as conn:
        lines = answer_time_report(conn, QueueQuery(start, end, zone, sites=frozenset({"site-a"})))
    assert lines
    for line in lines:
        mine = [
            c for c in CALLS
            if c.queue == line["queue"]
            and str(reports.local_time(int(c.start * 1000), zone).date()) == line["period"]  # type: ignore[union-attr]
        ]  # fmt: skip
        assert {n: line[n] for n in BUCKET_COLUMNS} == by_hand(mine)
        assert line["answered"] == sum(c.outcome == "answered" for c in mine)


def get(client: TestClient, token: str, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    response: httpx.Response = client.get(
        "/api/v1/reports/queues/answer-times", params=params, headers=headers
    )
    return response


SPAN = {"from": "2025-11-20", "to": "2025-12-01"}


def test_the_api_names_the_buckets_and_scopes_a_site_viewer(client: TestClient) -> None:
    body = get(client, BRANCH, **SPAN).json()
    assert [b["from_s"] for b in body["buckets"]] == list(BOUNDS)
    assert [b["to_s"] for b in body["buckets"]] == [*BOUNDS[1:], None]
    assert {line["site_id"] for line in body["rows"]} == {"site-b"}
    total = {n: sum(line[n] for line in body["rows"]) for n in BUCKET_COLUMNS}
    assert total == by_hand(CALLS[:10])
    refused = get(client, BRANCH, site="site-a", **SPAN)
    assert (refused.status_code, refused.json()["error_id"]) == (403, "site-forbidden")
    bad = get(client, HQ, **{**SPAN, "tz": "Mars/Olympus"})
    assert (bad.status_code, bad.json()["error_id"]) == (422, "bad-time-zone")


def test_the_distribution_comes_as_csv(client: TestClient) -> None:
    response = get(client, HQ, site="site-a", interval="hour", format="csv", **SPAN)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {n: sum(int(row[n]) for row in rows) for n in BUCKET_COLUMNS} == by_hand(CALLS)
