"""Calls per hour and day in each site's own time zone (``tz=site``), with the lost calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggregator import reports
from aggregator.api import mount_api
from aggregator.settings import AggregatorSettings
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import create_engine
from aggregator.store.schema import directory_sites
from tests.unit.queues.conftest import HQ
from tests.unit.queues.test_queue_report import CALLS

SPAN = {"from": "2025-11-24", "to": "2025-11-28"}
LOST = ("abandoned", "timeout", "interrupted")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("zones")
    engine = create_engine(f"sqlite:///{root / 'agg.db'}")
    docs = [(c.n, c.cdr()) for c in CALLS]
    for site in ("site-a", "site-b", "site-c"):
        CdrStore(engine).ingest(site, docs)
    with engine.begin() as conn:
        conn.execute(directory_sites.insert(), [
            {"id": "site-b", "profile": "branch", "sip_address": "10.0.0.2",
             "timezone": "America/New_York", "extensions": [], "ranges": []},
            {"id": "site-c", "profile": "branch", "sip_address": "10.0.0.3",
             "timezone": "UTC", "extensions": [], "ranges": []},
        ])  # fmt: skip
    settings = AggregatorSettings.model_validate(
        {
            "data_dir": str(root),
            "api": {"tokens": [{"name": "h", "token": HQ, "role": "hq-viewer"}]},
        }
    )
    app = FastAPI()
    mount_api(app, settings, lambda: engine)
    yield TestClient(app)
    engine.dispose()


def rows(client: TestClient, **params: str) -> list[dict[str, object]]:
    headers = {"Authorization": f"Bearer {HQ}"}
    response: httpx.Response = client.get(
        "/api/v1/reports/queues", params={**SPAN, **params}, headers=headers
    )
    assert response.status_code == 200, response.text
    lines: list[dict[str, object]] = response.json()["rows"]
    return lines


def by_local_day(tz: str) -> Counter[str]:
    """Calls of both queues per local day of ``tz``, within SPAN there."""
    zone = reports.zone(tz)
    start, end = (reports.parse_time(SPAN[k], zone) for k in ("from", "to"))
    days = Counter[str]()
    for c in CALLS:
        if start <= c.start * 1000 < end:
            days[str(reports.local_time(int(c.start * 1000), zone).date())] += 1  # type: ignore[union-attr]
    return days


def test_each_site_is_reported_in_its_own_zone(client: TestClient) -> None:
    lines = rows(client, tz="site")
    for site, tz in (("site-a", "UTC"), ("site-b", "America/New_York"), ("site-c", "UTC")):
        days = Counter[str]()
        for line in lines:
            if line["site_id"] == site:
                days[str(line["period"])] += int(line["offered"])  # type: ignore[call-overload]
        assert days == by_local_day(tz), site
    hours = rows(client, tz="site", interval="hour", site="site-b")
    assert hours
    assert all(str(line["period"]).endswith("-05:00") for line in hours)


def test_lost_calls_per_hour_are_the_abandoned_timed_out_and_interrupted(
    client: TestClient,
) -> None:
    hours = rows(client, interval="hour", site="site-a")
    assert all(
        line["lost"] == sum(line[k] for k in LOST)  # type: ignore[misc]
        for line in hours
    )
    assert sum(int(line["lost"]) for line in hours) == sum(  # type: ignore[call-overload]
        c.outcome in LOST and c.start * 1000 < reports.parse_time("2025-11-28", reports.zone("UTC"))
        for c in CALLS
    )
