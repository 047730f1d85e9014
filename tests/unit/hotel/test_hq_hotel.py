"""Hotel records at HQ: stored once by (site, id), refused alone, searched and reported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import msgpack
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggregator.api import mount_api
from aggregator.hotel.queries import hotel_report
from aggregator.hotel.store import store_hotel
from aggregator.settings import AggregatorSettings
from aggregator.store.db import create_engine
from aggregator.store.schema import hotel_postings, hotel_wake_ups
from drivers.sync.hotel import HotelPosting, WakeUpOutcome, pack_hotel_record
from drivers.sync.records import RecordError

Answer = Literal["OK", "NG"]
Result = Literal["OK", "BY", "NR"]
DAY1 = 1_796_601_600.0  # 2026-12-07T00:00:00Z
TOKENS = {"admin": "hq-admin-token-0123456789", "site-viewer": "hq-site-token-0123456789"}


def posting(
    n: int, room: str, at: float, answer: Answer = "OK", amount: int = 100, business: str = ""
) -> bytes:
    return pack_hotel_record(
        HotelPosting(id=f"P{n}-1", room=room, posting_number=n, posting_type="C",
                     amount=amount, answer=answer, queued_at=at - 1, answered_at=at,
                     business_date=business)
    )  # fmt: skip


def wake_up(n: int, room: str, at: float, result: Result, desk: bool = False) -> bytes:
    return pack_hotel_record(
        WakeUpOutcome(id=f"wake-{n}", room=room, date="261207", time="063000", due_at=at - 60,
                      result=result, attempts=3 if desk else 1, front_desk_alerted=desk,
                      ended_at=at)
    )  # fmt: skip


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    made = create_engine(f"sqlite:///{tmp_path / 'agg.db'}")
    yield made
    made.dispose()


def store(engine: sa.Engine, site: str, records: list[bytes]) -> list[str]:
    refused: list[str] = []

    def note(_seq: int, err: RecordError) -> None:
        refused.append(err.error_id)

    with engine.begin() as conn:
        store_hotel(conn, site, list(enumerate(records, 1)), note)
    return refused


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def test_a_batch_sent_again_stores_nothing_twice_and_a_bad_record_is_refused_alone(
    engine: sa.Engine,
) -> None:
    batch = [posting(1, "101", DAY1 + 3600), b"\xc1", wake_up(1, "101", DAY1 + 7200, "OK"),
             msgpack.packb({"kind": "posting", "id": "P2-1", "room": "101"})]  # fmt: skip
    assert store(engine, "hotel-a", batch) == ["record-not-msgpack", "record-bad-field"]
    assert store(engine, "hotel-a", batch[:1] + batch[2:3]) == []
    assert store(engine, "hotel-b", batch[:1]) == []
    assert (count(engine, hotel_postings), count(engine, hotel_wake_ups)) == (2, 1)


@pytest.fixture
def api(engine: sa.Engine, tmp_path: Path) -> Iterator[TestClient]:
    store(engine, "hotel-a", [
        posting(1, "101", DAY1 + 3600), posting(2, "0330", DAY1 + 7200, amount=250),
        posting(3, "101", DAY1 + 86400 + 60, answer="NG"), posting(4, "101", DAY1 + 86400 + 120),
        wake_up(1, "101", DAY1 + 23400, "OK"), wake_up(2, "0330", DAY1 + 23500, "BY", desk=True),
        wake_up(3, "101", DAY1 + 86400 + 23400, "NR", desk=True),
    ])  # fmt: skip
    store(engine, "hotel-b", [posting(1, "101", DAY1 + 3600, amount=999)])
    tokens: list[dict[str, Any]] = [
        {"name": "a", "token": TOKENS["admin"], "role": "admin"},
        {"name": "s", "token": TOKENS["site-viewer"], "role": "site-viewer", "sites": ["hotel-b"]},
    ]
    settings = AggregatorSettings.model_validate(
        {"data_dir": str(tmp_path), "api": {"tokens": tokens}}
    )
    app = FastAPI()
    mount_api(app, settings, lambda: engine)
    with TestClient(app) as client:
        yield client


def get(client: TestClient, path: str, role: str = "admin", **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {TOKENS[role]}"}
    return client.get(f"/api/v1{path}", params=params, headers=headers)


def test_postings_are_filtered_by_site_period_and_room(api: TestClient) -> None:
    found = get(api, "/hotel/postings", site="hotel-a", room="101").json()["postings"]
    assert [p["posting_number"] for p in found] == [4, 3, 1]
    day = {"from": "2026-12-07", "to": "2026-12-08"}
    found = get(api, "/hotel/postings", site="hotel-a", **day).json()["postings"]
    assert [(p["room"], p["amount"]) for p in found] == [("0330", 250), ("101", 100)]
    assert found[0]["answered"] == "2026-12-07T02:00:00.000+00:00"
    assert len(get(api, "/hotel/postings").json()["postings"]) == 5


def test_wake_ups_are_filtered_and_carry_their_outcome(api: TestClient) -> None:
    found = get(api, "/hotel/wakeups", room="0330").json()["wake_ups"]
    assert [(w["result"], w["attempts"], w["front_desk_alerted"]) for w in found] == [
        ("BY", 3, True)
    ]
    csv = get(api, "/hotel/wakeups", site="hotel-a", format="csv").text
    header, *lines = csv.splitlines()
    assert "result" in header.split(",")
    assert len(lines) == 3


def test_the_chain_report_sums_postings_and_counts_wake_ups_per_property_and_day(
    api: TestClient,
) -> None:
    rows = get(api, "/reports/hotel", **{"from": "2026-12-07", "to": "2026-12-09"}).json()["rows"]
    assert [(r["site_id"], r["day"]) for r in rows] == [
        ("hotel-a", "2026-12-07"), ("hotel-a", "2026-12-08"), ("hotel-b", "2026-12-07")
    ]  # fmt: skip
    first, second, other = rows
    assert (first["postings"], first["amount"], first["postings_refused"]) == (2, 350, 0)
    assert (first["wake_ups_ok"], first["wake_ups_busy"], first["front_desk_alerted"]) == (1, 1, 1)
    assert (second["postings"], second["postings_refused"], second["wake_ups_no_answer"]) == (
        1, 1, 1
    )  # fmt: skip
    assert (other["postings"], other["amount"]) == (1, 999)
    shifted = get(api, "/reports/hotel", site="hotel-a", tz="America/New_York",
                  **{"from": "2026-12-06", "to": "2026-12-09"}).json()["rows"]  # fmt: skip
    assert [(r["day"], r["postings"], r["wake_ups_ok"]) for r in shifted] == [
        ("2026-12-06", 2, 0), ("2026-12-07", 1, 1), ("2026-12-08", 0, 0)
    ]  # fmt: skip


def test_a_posting_counts_on_its_business_date(engine: sa.Engine, tmp_path: Path) -> None:
    store(engine, "hotel-c", [
        posting(1, "101", DAY1 + 86400 + 3600, business="2026-12-07"),
        posting(2, "101", DAY1 + 86400 + 36000, business="2026-12-08"),
    ])  # fmt: skip
    with engine.connect() as conn:
        rows = hotel_report(conn, frozenset({"hotel-c"}), int(DAY1 * 1000),
                            int((DAY1 + 2 * 86400) * 1000), ZoneInfo("UTC"))  # fmt: skip
    assert [(r["day"], r["postings"]) for r in rows] == [("2026-12-07", 1), ("2026-12-08", 1)]


def test_a_site_viewer_sees_only_its_sites(api: TestClient) -> None:
    found = get(api, "/hotel/postings", "site-viewer").json()["postings"]
    assert {p["site_id"] for p in found} == {"hotel-b"}
    refused = get(api, "/hotel/wakeups", "site-viewer", site="hotel-a")
    assert (refused.status_code, refused.json()["error_id"]) == (403, "site-forbidden")
    rows = get(api, "/reports/hotel", "site-viewer", **{"from": "2026-12-07", "to": "2026-12-08"})
    assert {r["site_id"] for r in rows.json()["rows"]} == {"hotel-b"}


def test_a_report_without_a_period_or_with_a_bad_one_is_refused(api: TestClient) -> None:
    assert get(api, "/reports/hotel").status_code == 422
    bad = get(api, "/reports/hotel", **{"from": "yesterday", "to": "2026-12-08"})
    assert (bad.status_code, bad.json()["error_id"]) == (422, "bad-time")
