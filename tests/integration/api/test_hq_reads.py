"""HQ reads: a site-viewer sees only its sites everywhere, CSV cells are inert, spans bounded."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.integration.api.apps import FORMULA_NAME, HQ_TOKENS, SITE, hq_app

SITE_VIEWER = {"Authorization": f"Bearer {HQ_TOKENS['site-viewer']}"}
HQ_VIEWER = {"Authorization": f"Bearer {HQ_TOKENS['hq-viewer']}"}
DAYS = {"from": "2025-11-01", "to": "2025-12-01"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with hq_app(tmp_path) as (app, _), TestClient(app) as test_client:
        yield test_client


def read(client: TestClient, path: str, headers: dict[str, str], **params: Any) -> Any:
    response = client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json() if params.get("format") != "csv" else response.text


def sites_in(found: Any) -> set[str]:
    """Every site_id value anywhere in a JSON answer."""
    if isinstance(found, dict):
        own = {found["site_id"]} if isinstance(found.get("site_id"), str) else set()
        return own.union(*(sites_in(v) for v in found.values()))
    if isinstance(found, list):
        return set().union(*(sites_in(v) for v in found))
    return set()


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/cdrs", {}),
        ("/api/v1/reports/summary", DAYS),
        ("/api/v1/reports/by-extension", DAYS),
        ("/api/v1/reports/by-trunk", DAYS),
        ("/api/v1/sms", {}),
        ("/api/v1/fleet/sims", {}),
        ("/api/v1/sites", None),
    ],
)
def test_a_site_viewer_sees_only_its_site(
    client: TestClient, path: str, params: dict[str, str] | None
) -> None:
    assert sites_in(read(client, path, HQ_VIEWER, **(params or {}))) == {SITE, "site-b"}
    assert sites_in(read(client, path, SITE_VIEWER, **(params or {}))) == {SITE}
    if params is not None:
        exported = read(client, path, SITE_VIEWER, **params, format="csv")
        assert {row["site_id"] for row in csv.DictReader(io.StringIO(exported))} == {SITE}


def test_a_site_viewer_sees_only_its_site_in_the_routing_report(client: TestClient) -> None:
    assert set(read(client, "/api/v1/reports/routing", SITE_VIEWER)["sites"]) == {SITE}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/sites/site-b",
        "/api/v1/cdrs?site=site-b",
        "/api/v1/sms?site=site-b",
        "/api/v1/fleet/sims?site=site-b",
        "/api/v1/fleet/sims/89490000000000001",
        "/api/v1/recordings/site-b/rec-1",
        "/api/v1/reports/summary?site=site-b&from=2025-11-01&to=2025-12-01",
    ],
)
def test_another_sites_records_are_forbidden_to_a_site_viewer(
    client: TestClient, path: str
) -> None:
    response = client.get(path, headers=SITE_VIEWER)
    assert (response.status_code, response.json()["error_id"]) == (403, "site-forbidden")


@pytest.mark.parametrize(
    ("path", "column"), [("/api/v1/cdrs", "caller_name"), ("/api/v1/sms", "text")]
)
def test_csv_exports_write_formula_text_as_inert_text(
    client: TestClient, path: str, column: str
) -> None:
    exported = read(client, path, HQ_VIEWER, site=SITE, format="csv")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert rows
    assert {row[column] for row in rows} == {f"'{FORMULA_NAME}"}
    assert read(client, path, HQ_VIEWER, site=SITE)[path.rsplit("/", 1)[1]][0][column] == (
        FORMULA_NAME
    )


@pytest.mark.parametrize("report", ["summary", "by-extension", "by-trunk"])
@pytest.mark.parametrize(
    ("span", "error_id"),
    [
        ({"from": "2025-12-01", "to": "2025-11-01"}, "report-span-reversed"),
        ({"from": "2024-01-01", "to": "2025-01-02"}, "report-span-too-long"),
        ({"from": "0001-01-01", "to": "9999-12-31"}, "report-span-too-long"),
    ],
)
def test_a_report_over_a_reversed_or_too_long_span_is_refused(
    client: TestClient, report: str, span: dict[str, str], error_id: str
) -> None:
    response = client.get(f"/api/v1/reports/{report}", params=span, headers=HQ_VIEWER)
    assert (response.status_code, response.json()["error_id"]) == (422, error_id)
    assert response.json()["message"]


@pytest.mark.parametrize(
    ("span", "error_id"),
    [
        ({"from": "2025-12-01", "to": "2025-11-01"}, "report-span-reversed"),
        ({"from": "2024-01-01", "to": "2025-01-02"}, "report-span-too-long"),
    ],
)
def test_a_sim_usage_report_over_a_reversed_or_too_long_span_is_refused(
    client: TestClient, span: dict[str, str], error_id: str
) -> None:
    response = client.get("/api/v1/fleet/reports/usage", params=span, headers=HQ_VIEWER)
    assert (response.status_code, response.json()["error_id"]) == (422, error_id)
    days = {"from": "2025-01-01", "to": "2026-01-01"}
    assert client.get("/api/v1/fleet/reports/usage", params=days, headers=HQ_VIEWER).is_success


def test_a_report_over_the_longest_span_answers(client: TestClient) -> None:
    days = {"from": "2025-01-01", "to": "2026-01-02", "group": "hour"}
    rows = read(client, "/api/v1/reports/summary", HQ_VIEWER, site=SITE, **days)["rows"]
    assert sum(r["calls"] for r in rows) == 20


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "error_id"),
    [
        ("put", "/api/v1/directory", b"i\xff\x17\xfee", 400, "bad-request"),
        ("get", "/api/v1/nothing-here", None, 404, "not-found"),
        ("post", "/api/v1/sites", None, 405, "method-not-allowed"),
    ],
)
def test_http_level_errors_take_the_common_error_shape(
    client: TestClient, method: str, path: str, content: bytes | None, status: int, error_id: str
) -> None:
    headers = {"Authorization": f"Bearer {HQ_TOKENS['admin']}", "Content-Type": "application/json"}
    response = client.request(method, path, content=content, headers=headers)
    assert response.status_code == status
    assert response.json()["error_id"] == error_id
    assert response.json()["message"]
