"""CDR ingest is idempotent; reports and the HQ API read it back correctly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggregator.api import mount_api
from aggregator.settings import AggregatorSettings
from aggregator.store.cdr_rows import REJECTED_KEPT, CdrRow, cdr_row, parse_batch
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import create_engine
from aggregator.store.schema import cdr_rollup, cdrs, rejected_records, sites
from tests.sync_env import make_cdr

ADMIN, HQ, BRANCH = "admin-token-0123456789", "hq-token-0123456789ab", "site-token-0123456789"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'agg.db'}")
    yield eng
    eng.dispose()


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def test_redelivered_batch_is_stored_once_and_counted_once(engine: sa.Engine) -> None:
    store = CdrStore(engine)
    batch = [(n + 1, make_cdr(n)) for n in range(100)]
    first = store.ingest("site-a", batch)
    again = store.ingest("site-a", [*batch[50:], (999, make_cdr(500))])
    assert (first.inserted, first.duplicates) == (100, 0)
    assert (again.inserted, again.duplicates) == (1, 50)
    assert count(engine, cdrs) == 101
    with engine.connect() as conn:
        calls = conn.scalar(
            sa.select(sa.func.sum(cdr_rollup.c.calls)).where(cdr_rollup.c.dim == "site")
        )
    assert calls == 101


def test_group_commit_with_a_stored_cdr_counts_only_new_ones(engine: sa.Engine) -> None:
    store = CdrStore(engine)
    store.ingest("site-a", [(1, make_cdr(1))])
    first = parse_batch("site-a", [(2, make_cdr(2)), (3, make_cdr(3))])
    second = parse_batch("site-a", [(4, make_cdr(3)), (5, make_cdr(1)), (6, make_cdr(4))])
    results = store.store_many([first, second])
    assert [(r.inserted, r.duplicates) for r in results] == [(2, 0), (1, 2)]
    assert count(engine, cdrs) == 4
    with engine.connect() as conn:
        calls = conn.scalar(
            sa.select(sa.func.sum(cdr_rollup.c.calls)).where(cdr_rollup.c.dim == "site")
        )
    assert calls == 4


def test_a_group_of_one_cdr_batches_counts_each_site_once_per_new_cdr(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(sites), [{"site_id": s, "first_seen_ms": 1, "last_seen_ms": 1}
                                        for s in ("site-a", "site-b", "site-c")])  # fmt: skip
    store = CdrStore(engine)
    store.ingest("site-b", [(1, make_cdr(1))])
    group = [("site-a", 1), ("site-b", 1), ("site-a", 2), ("site-b", 3)]
    results = store.store_many([parse_batch(site, [(n, make_cdr(n))]) for site, n in group])
    assert [(r.inserted, r.duplicates) for r in results] == [(1, 0), (0, 1), (1, 0), (1, 0)]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sites.c.site_id, sites.c.cdrs_received, sites.c.last_seen_ms))
        found = {r.site_id: (r.cdrs_received, r.last_seen_ms > 1) for r in rows}
    assert found == {"site-a": (2, True), "site-b": (2, True), "site-c": (0, False)}


def test_cdr_row_fields_follow_the_table_columns() -> None:
    assert CdrRow._fields == tuple(c.name for c in cdrs.columns if c.name != "id")


def test_same_cdr_id_from_two_sites_is_two_cdrs(engine: sa.Engine) -> None:
    store = CdrStore(engine)
    store.ingest("site-a", [(1, make_cdr(1))])
    store.ingest("site-b", [(1, make_cdr(1))])
    assert count(engine, cdrs) == 2


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xc1garbage", "not msgpack"),
        (msgpack.packb([1, 2]), "a CDR is a msgpack map"),
        (msgpack.packb({"disposition": "answered", "start": 1}), "id (or cdr_id) must be"),
        (make_cdr(1, disposition="maybe"), "disposition must be one of"),
        (make_cdr(1, start=None), "start is required"),
        (make_cdr(1, start="yesterday"), "not an ISO-8601 time"),
    ],
)
def test_unreadable_cdr_is_kept_aside_with_its_reason(
    engine: sa.Engine, raw: bytes, reason: str
) -> None:
    result = CdrStore(engine).ingest("site-a", [(7, raw), (8, make_cdr(2))])
    assert (result.inserted, result.rejected) == (1, 1)
    with engine.connect() as conn:
        row = conn.execute(sa.select(rejected_records)).one()
    assert row.seq == 7
    assert reason in row.reason
    assert row.raw == raw


@pytest.fixture
def client(tmp_path: Path, engine: sa.Engine) -> TestClient:
    settings = AggregatorSettings.model_validate(
        {
            "data_dir": str(tmp_path),
            "api": {
                "tokens": [
                    {"name": "a", "token": ADMIN, "role": "admin"},
                    {"name": "h", "token": HQ, "role": "hq-viewer"},
                    {"name": "b", "token": BRANCH, "role": "site-viewer", "sites": ["site-b"]},
                ]
            },
        }
    )
    store = CdrStore(engine)
    store.ingest("site-a", [(n + 1, make_cdr(n)) for n in range(0, 7200, 2)])
    store.ingest("site-b", [(1, make_cdr(1))])
    app = FastAPI()
    mount_api(app, settings, lambda: engine)
    return TestClient(app)


def get(client: TestClient, path: str, token: str = HQ, **params: object) -> object:
    response = client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_summary_by_day_in_a_time_zone(client: TestClient) -> None:
    rows = get(
        client,
        "/api/v1/reports/summary",
        site="site-a",
        tz="Asia/Tokyo",
        **{"from": "2025-11-25", "to": "2025-11-26"},
    )["rows"]  # type: ignore[index]
    (day,) = rows
    # T0 is 16:00Z = 01:00 JST on the 25th; the CDRs span two hours.
    assert day["period"] == "2025-11-25"
    assert day["calls"] == 3600
    assert day["answered"] == 1800
    assert day["asr_percent"] == 50.0
    assert day["acd_s"] == 60.0
    assert day["billable_minutes"] == 1800.0
    assert day["busiest_hour"] == "01:00"


def test_reports_by_extension_and_trunk(client: TestClient) -> None:
    span = {"from": "2025-11-24", "to": "2025-11-26"}
    ext = get(client, "/api/v1/reports/by-extension", site="site-a", **span)["rows"]  # type: ignore[index]
    assert {r["extension"]: r["calls"] for r in ext} == {"1000": 1200, "1001": 1200, "1002": 1200}
    trunk = get(client, "/api/v1/reports/by-trunk", site="site-a", **span)["rows"]  # type: ignore[index]
    assert {r["trunk"]: r["calls"] for r in trunk} == {"sip-1": 3600}


def test_cdr_search_pages_through_everything_once(client: TestClient) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        params = {"site": "site-a", "limit": 500, **({"cursor": cursor} if cursor else {})}
        page = get(client, "/api/v1/cdrs", HQ, **params)
        seen += [c["cdr_id"] for c in page["cdrs"]]  # type: ignore[index]
        cursor = page["next_cursor"]  # type: ignore[index]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 3600


def test_cdr_search_filters_and_renders_in_time_zone(client: TestClient) -> None:
    page = get(client, "/api/v1/cdrs", number="+491700010", tz="Europe/Berlin")
    found = page["cdrs"]  # type: ignore[index]
    assert len(found) == 8
    assert {c["callee_number"] for c in found} == {"+491700010"}
    assert all(c["started_at"].endswith("+01:00") for c in found)
    answered = get(
        client,
        "/api/v1/cdrs",
        disposition="no-answer",
        extension="1000",
        limit=1000,
        **{"from": "2025-11-24T16:00:00+00:00"},
    )
    assert {c["disposition"] for c in answered["cdrs"]} == {"no-answer"}  # type: ignore[index]


def test_csv_export_streams_every_row(client: TestClient) -> None:
    response = client.get(
        "/api/v1/cdrs",
        params={"site": "site-a", "format": "csv"},
        headers={"Authorization": f"Bearer {HQ}"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.strip().splitlines()
    assert lines[0].startswith("site_id,cdr_id,")
    assert len(lines) == 3601


def test_site_viewer_sees_only_its_site(client: TestClient) -> None:
    page = get(client, "/api/v1/cdrs", token=BRANCH)
    assert {c["site_id"] for c in page["cdrs"]} == {"site-b"}  # type: ignore[index]
    response = client.get(
        "/api/v1/cdrs", params={"site": "site-a"}, headers={"Authorization": f"Bearer {BRANCH}"}
    )
    assert response.status_code == 403
    assert response.json()["error_id"] == "site-forbidden"


@pytest.mark.parametrize(
    ("headers", "params", "status", "error_id"),
    [
        ({}, {}, 401, "missing-token"),
        ({"Authorization": "Bearer nope"}, {}, 401, "bad-token"),
        ({"Authorization": f"Bearer {HQ}"}, {"tz": "Mars/Olympus"}, 422, "bad-time-zone"),
        ({"Authorization": f"Bearer {HQ}"}, {"from": "last tuesday"}, 422, "bad-time"),
        ({"Authorization": f"Bearer {HQ}"}, {"cursor": "!!"}, 422, "bad-cursor"),
        ({"Authorization": f"Bearer {HQ}"}, {"limit": 0}, 422, "invalid-request"),
    ],
)
def test_bad_requests_get_an_error_id_and_a_message(
    client: TestClient,
    headers: dict[str, str],
    params: dict[str, object],
    status: int,
    error_id: str,
) -> None:
    response = client.get("/api/v1/cdrs", params=params, headers=headers)
    assert response.status_code == status
    body = response.json()
    assert body["error_id"] == error_id
    assert body["message"]


def test_unknown_site_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/sites/nowhere", headers={"Authorization": f"Bearer {HQ}"})
    assert response.status_code == 404
    assert response.json()["error_id"] == "unknown-site"


def test_a_pbx_cdr_document_is_stored_with_its_cause(engine: sa.Engine) -> None:
    doc = {
        "cdr_id": "c-1",
        "disposition": "busy",
        "start": "2026-11-25T10:00:00+00:00",
        "hangup_cause": {"sip_code": 486, "reason": "busy"},
        "caller": {"extension": "1001"},
    }
    assert CdrStore(engine).ingest("site-a", [(1, msgpack.packb(doc))]).inserted == 1
    with engine.connect() as conn:
        row = conn.execute(sa.select(cdrs)).one()
    assert (row.cdr_id, row.hangup_cause, row.caller_extension) == ("c-1", "486 busy", "1001")


def test_a_batch_mixing_good_and_invalid_cdrs_stores_the_good_and_refuses_each_bad_one(
    engine: sa.Engine,
) -> None:
    batch = [
        (1, make_cdr(1)),
        (2, make_cdr(2, duration_s="sixty")),
        (3, make_cdr(3, start=1_772_445_600_000)),
        (4, make_cdr(4)),
    ]
    parsed = parse_batch("site-a", batch)
    assert parsed.error_ids == ("record-bad-field", "record-out-of-range")
    result = CdrStore(engine).store_many([parsed, parse_batch("site-b", [(1, make_cdr(9))])])
    assert [(r.inserted, r.rejected) for r in result] == [(2, 2), (1, 0)]
    with engine.connect() as conn:
        kept = conn.execute(sa.select(rejected_records.c.seq, rejected_records.c.reason)).all()
    assert [(seq, reason.split(":")[0]) for seq, reason in kept] == [
        (2, "record-bad-field"),
        (3, "record-out-of-range"),
    ]


def test_a_batch_of_garbage_keeps_only_the_first_refused_records_whole(engine: sa.Engine) -> None:
    batch = [(n, b"\xc1") for n in range(REJECTED_KEPT + 50)]
    result = CdrStore(engine).ingest("site-a", batch)
    assert (result.inserted, result.duplicates, result.rejected) == (0, 0, REJECTED_KEPT + 50)
    assert count(engine, rejected_records) == REJECTED_KEPT


def test_cdr_pages_render_stored_times_past_the_datetime_range(
    client: TestClient, engine: sa.Engine
) -> None:
    row = cdr_row("site-c", make_cdr(1), 0)._replace(
        started_ms=1_772_445_600_000_000, ended_ms=-(10**18)
    )
    with engine.begin() as conn:
        conn.execute(sa.insert(cdrs), [row._asdict()])
    page = get(client, "/api/v1/cdrs", site="site-c")
    assert [(c["started_at"], c["ended_at"]) for c in page["cdrs"]] == [(None, None)]  # type: ignore[index]
    response = client.get(
        "/api/v1/cdrs",
        params={"site": "site-c", "format": "csv"},
        headers={"Authorization": f"Bearer {HQ}"},
    )
    assert response.status_code == 200
