"""The queue report from the rollups: equal to a hand count, per day or hour, in any zone."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from aggregator import reports
from aggregator.queues.report import QueueQuery, queue_report, utc_offsets
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import create_engine
from tests.queue_cdrs import QueuedCall
from tests.sync_env import T0
from tests.unit.queues.conftest import BRANCH, HQ

OUTCOMES = ["answered"] * 6 + ["abandoned", "overflowed", "timeout", "interrupted", "callback"]


def spread_calls(count: int, seed: int = 7) -> list[QueuedCall]:
    """Calls over three days from T0 (16:00 UTC), two queues, random outcomes and waits."""
    rng = random.Random(seed)
    return [
        QueuedCall(n, rng.choice(["support", "sales"]), rng.choice(OUTCOMES),
                   wait_s=round(rng.uniform(1, 200), 1), talk_s=round(rng.uniform(5, 600), 1),
                   sl_met=rng.random() < 0.5, start=T0 + n * 3 * 24 * 3600 / count)
        for n in range(count)
    ]  # fmt: skip


CALLS = spread_calls(400)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path_factory.mktemp('queues') / 'agg.db'}")
    store = CdrStore(eng)
    docs = [(c.n, c.cdr()) for c in CALLS]
    for first in range(0, len(docs), 70):
        store.ingest("site-a", docs[first : first + 100])  # overlapping: redeliveries
    store.ingest("site-b", docs[:10])
    yield eng
    eng.dispose()


def hand_count(calls: list[QueuedCall]) -> dict[str, object]:
    """The figures of one report line, worked out from the calls themselves."""
    answered = [c for c in calls if c.outcome == "answered"]
    judged = len(answered) + sum(c.outcome == "abandoned" for c in calls)
    met = sum(c.sl_met for c in answered)
    return {
        "offered": len(calls),
        "answered": len(answered),
        "abandoned": sum(c.outcome == "abandoned" for c in calls),
        "service_level_percent": round(100 * met / judged, 1) if judged else None,
        "asa_s": round(sum(c.wait_s for c in answered) / len(answered), 1) if answered else None,
        "aht_s": round(sum(c.talk_s for c in answered) / len(answered), 1) if answered else None,
        "longest_wait_s": round(max(c.wait_s for c in calls), 1),
    }


def report(
    engine: sa.Engine, tz: str, start: str, end: str, **kw: object
) -> list[dict[str, object]]:
    zone = reports.zone(tz)
    query = QueueQuery(reports.parse_time(start, zone), reports.parse_time(end, zone), zone, **kw)  # type: ignore[arg-type]
    with engine.connect() as conn:
        return queue_report(conn, query)


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Tokyo"])
def test_each_local_day_of_each_queue_equals_a_hand_count(engine: sa.Engine, tz: str) -> None:
    lines = report(engine, tz, "2025-11-20", "2025-12-01", sites=frozenset({"site-a"}))
    zone = reports.zone(tz)
    expected: dict[tuple[str, str], list[QueuedCall]] = {}
    for queue in ("sales", "support"):
        for c in CALLS:
            day = reports.local_time(int(c.start * 1000), zone)
            assert day is not None
            expected.setdefault((queue, day.date().isoformat()), [])
            if c.queue == queue:
                expected[(queue, day.date().isoformat())].append(c)
    got = {(str(line["queue"]), str(line["period"])): line for line in lines}
    assert got.keys() == {key for key, calls in expected.items() if calls}
    for key, line in got.items():
        assert_figures(line, hand_count(expected[key]))


def assert_figures(line: dict[str, object], expected: dict[str, object]) -> None:
    """Counts equal; figures rounded to 0.1 within a rounding step (sums differ in order)."""
    for name, value in expected.items():
        assert line[name] == (value if value is None else pytest.approx(value, abs=0.11)), name


def test_hours_add_up_to_their_day(engine: sa.Engine) -> None:
    days = report(engine, "UTC", "2025-11-25", "2025-11-26", queue="support",
                  sites=frozenset({"site-a"}))  # fmt: skip
    hours = report(engine, "UTC", "2025-11-25", "2025-11-26", interval="hour", queue="support",
                   sites=frozenset({"site-a"}))  # fmt: skip
    assert len(hours) == 24
    assert all(line["period"].startswith("2025-11-25T") for line in hours)  # type: ignore[attr-defined]
    (day,) = days
    for name in ("offered", "answered", "abandoned", "overflowed", "timeout", "callback"):
        assert sum(line[name] for line in hours) == day[name]  # type: ignore[misc]
    assert max(line["longest_wait_s"] for line in hours) == day["longest_wait_s"]  # type: ignore[type-var]


def test_a_range_inside_one_day_counts_only_its_hours(engine: sa.Engine) -> None:
    (line,) = report(engine, "UTC", "2025-11-25T06:00", "2025-11-25T09:00", queue="sales",
                     sites=frozenset({"site-a"}))  # fmt: skip
    calls = [c for c in CALLS if c.queue == "sales"
             and reports.parse_time("2025-11-25T06:00", reports.zone("UTC")) <= c.start * 1000
             < reports.parse_time("2025-11-25T09:00", reports.zone("UTC"))]  # fmt: skip
    assert line["period"] == "2025-11-25"
    assert line["offered"] == len(calls)


def test_utc_offsets_list_each_daylight_saving_change() -> None:
    zone = reports.zone("Europe/Berlin")
    start, end = reports.parse_time("2026-03-28", zone), reports.parse_time("2026-03-31", zone)
    offsets = utc_offsets(start, end, zone)
    change = reports.parse_time("2026-03-29T01:00:00+00:00", zone)
    assert offsets == [(start, 3_600_000), (change, 7_200_000)]
    year = utc_offsets(
        reports.parse_time("2026-01-01", zone), reports.parse_time("2027-01-01", zone), zone
    )
    autumn = reports.parse_time("2026-10-25T01:00:00+00:00", zone)
    assert [at for at, _ in year[1:]] == [change, autumn]


def test_local_days_follow_a_daylight_saving_change(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'dst.db'}")
    zone = reports.zone("Europe/Berlin")
    starts = ["2026-03-28T23:30Z", "2026-03-29T00:30Z", "2026-03-29T21:30Z", "2026-03-29T22:30Z"]
    calls = [QueuedCall(n, "support", "abandoned", wait_s=5,
                        start=reports.parse_time(at.replace("Z", "+00:00"), zone) / 1000)
             for n, at in enumerate(starts)]  # fmt: skip
    CdrStore(engine).ingest("site-a", [(c.n, c.cdr()) for c in calls])
    lines = report(engine, "Europe/Berlin", "2026-03-28", "2026-04-01")
    assert [(line["period"], line["offered"]) for line in lines] == [
        ("2026-03-29", 3), ("2026-03-30", 1)]  # fmt: skip
    engine.dispose()


def call(client: TestClient, token: str, **params: str) -> tuple[int, object]:
    response = client.get("/api/v1/reports/queues", params=params,
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    return response.status_code, (response.json() if "json" in response.headers["content-type"]
                                  else response.text)  # fmt: skip


SPAN = {"from": "2025-11-20", "to": "2025-12-01"}


def test_a_site_viewer_sees_only_its_sites(client: TestClient) -> None:
    status, body = call(client, BRANCH, **SPAN)
    assert status == 200
    assert {line["site_id"] for line in body["rows"]} == {"site-b"}  # type: ignore[index]
    assert sum(line["offered"] for line in body["rows"]) == 10  # type: ignore[index]
    status, body = call(client, BRANCH, site="site-a", **SPAN)
    assert (status, body["error_id"]) == (403, "site-forbidden")  # type: ignore[index]
    status, body = call(client, HQ, **SPAN)
    assert {line["site_id"] for line in body["rows"]} == {"site-a", "site-b"}  # type: ignore[index]


def test_the_report_comes_as_csv(client: TestClient) -> None:
    status, text = call(client, HQ, site="site-a", queue="sales", format="csv", **SPAN)
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(str(text))))
    assert {row["queue"] for row in rows} == {"sales"}
    assert sum(int(row["offered"]) for row in rows) == sum(c.queue == "sales" for c in CALLS)


@pytest.mark.parametrize(
    ("params", "error_id"),
    [
        ({"from": "2025-12-01", "to": "2025-11-01"}, "report-span-reversed"),
        ({"from": "yesterday", "to": "2025-11-01"}, "bad-time"),
        ({**SPAN, "tz": "Mars/Olympus"}, "bad-time-zone"),
    ],
)
def test_bad_parameters_are_refused_with_an_error_id(
    client: TestClient, params: dict[str, str], error_id: str
) -> None:
    status, body = call(client, HQ, **params)
    assert (status, body["error_id"]) == (422, error_id)  # type: ignore[index]
