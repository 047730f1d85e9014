"""The directory API: admins write, viewers read; writes publish versioned tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggregator.api import mount_api
from aggregator.settings import AggregatorSettings
from aggregator.store.db import create_engine
from aggregator.store.schema import snapshot_updates, snapshots
from tests.unit.routing.samples import company

ADMIN, HQ, BRANCH = "admin-token-0123456789", "hq-token-0123456789ab", "site-token-0123456789"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'agg.db'}")
    yield eng
    eng.dispose()


@pytest.fixture
def client(tmp_path: Path, engine: sa.Engine) -> TestClient:
    settings = AggregatorSettings.model_validate(
        {
            "data_dir": str(tmp_path),
            "api": {
                "tokens": [
                    {"name": "a", "token": ADMIN, "role": "admin"},
                    {"name": "h", "token": HQ, "role": "hq-viewer"},
                    {"name": "b", "token": BRANCH, "role": "site-viewer", "sites": ["paris"]},
                ]
            },
        }
    )
    app = FastAPI()
    mount_api(app, settings, lambda: engine)
    return TestClient(app)


def call(client: TestClient, method: str, path: str, token: str = ADMIN, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    return client.request(method, f"/api/v1/directory{path}", headers=headers, **kw)


def versions(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        query = sa.select(snapshots.c.site_id, snapshots.c.version)
        query = query.where(snapshots.c.site_id != "*")
        return dict(conn.execute(query).all())


def test_put_directory_publishes_version_1_for_every_site(
    client: TestClient, engine: sa.Engine
) -> None:
    response = call(client, "PUT", "", json=company())
    assert response.status_code == 200
    assert response.json() == {"revision": 1, "published": {"berlin": 1, "paris": 1, "lyon": 1}}
    body = call(client, "GET", "", token=HQ).json()
    assert body["revision"] == 1
    assert [s["id"] for s in body["directory"]["sites"]] == ["berlin", "lyon", "paris"]


def test_unchanged_directory_publishes_nothing(client: TestClient, engine: sa.Engine) -> None:
    call(client, "PUT", "", json=company())
    again = call(client, "PUT", "", json=company()).json()
    assert again == {"revision": 2, "published": {}}
    assert versions(engine) == {"berlin": 1, "paris": 1, "lyon": 1}


def test_one_extension_added_bumps_every_site_and_keeps_a_one_entry_update(
    client: TestClient, engine: sa.Engine
) -> None:
    call(client, "PUT", "", json=company())
    site = company()["sites"][1] | {"extensions": ["2500"]}
    response = call(client, "PUT", "/sites/paris", json=site)
    assert response.json()["published"] == {"berlin": 2, "paris": 2, "lyon": 2}
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(snapshot_updates).where(snapshot_updates.c.site_id == "berlin")
        ).one()
    assert (row.version, row.base_version) == (2, 1)
    assert row.changes == {"set": {"ext:paris:2500": "2500"}, "delete": []}


def test_bad_directory_is_refused_with_422_naming_entries_and_nothing_changes(
    client: TestClient, engine: sa.Engine
) -> None:
    call(client, "PUT", "", json=company())
    doc = company()
    doc["sites"][1]["ranges"] = [{"first": "1090", "last": "1110"}]
    response = call(client, "PUT", "", json=doc)
    assert response.status_code == 422
    body = response.json()
    assert body["error_id"] == "overlapping-extensions"
    assert body["details"]["entries"] == ["site berlin 1000-1099", "site paris 1090-1110"]
    assert body["details"]["problems"][0]["error_id"] == "overlapping-extensions"
    assert call(client, "GET", "/sites/paris").json()["ranges"] == [
        {"first": "2000", "last": "2099"}
    ]
    assert versions(engine) == {"berlin": 1, "paris": 1, "lyon": 1}


def test_deleting_a_site_still_referenced_is_refused(client: TestClient) -> None:
    call(client, "PUT", "", json=company())
    response = call(client, "DELETE", "/sites/lyon")
    assert response.status_code == 422
    assert response.json()["error_id"] == "unknown-site"
    assert response.json()["details"]["entries"] == ["trunk lyon-gsm", "site lyon"]


def test_per_entry_routes_create_replace_and_delete(client: TestClient) -> None:
    call(client, "PUT", "", json=company())
    rule = {"id": "spain", "prefix": "0034", "targets": [{"trunk": "lyon-gsm"}]}
    assert call(client, "PUT", "/rules/spain", json=rule).status_code == 200
    assert call(client, "GET", "/rules/spain").json()["prefix"] == "0034"
    assert call(client, "DELETE", "/rules/spain").status_code == 200
    missing = call(client, "GET", "/rules/spain")
    assert (missing.status_code, missing.json()["error_id"]) == (404, "unknown-entry")
    plan = call(client, "PUT", "/plan", json={"flat": False, "site_prefix": "8"})
    assert plan.status_code == 200
    assert call(client, "GET", "", token=HQ).json()["directory"]["plan"]["flat"] is False


def test_body_id_must_match_the_path(client: TestClient) -> None:
    trunk = {"id": "other", "site": "berlin", "numbers": ["+4930111"]}
    response = call(client, "PUT", "/trunks/berlin-2", json=trunk)
    assert (response.status_code, response.json()["error_id"]) == (422, "id-mismatch")


def test_viewers_read_but_may_not_write(client: TestClient) -> None:
    call(client, "PUT", "", json=company())
    for token in (HQ, BRANCH):
        assert call(client, "GET", "/trunks", token=token).status_code == 200
        refused = call(client, "PUT", "", token=token, json=company())
        assert (refused.status_code, refused.json()["error_id"]) == (403, "role-forbidden")
    assert call(client, "GET", "", token="nope-nope-nope-nope").status_code == 401


def test_snapshot_states_are_scoped_to_the_viewers_sites(client: TestClient) -> None:
    call(client, "PUT", "", json=company())
    states = call(client, "GET", "/snapshots", token=BRANCH).json()["snapshots"]
    assert states == [
        {"site_id": "paris", "version": 1, "applied_version": 0, "refused_reason": ""}
    ]
    assert len(call(client, "GET", "/snapshots", token=HQ).json()["snapshots"]) == 3


def test_malformed_body_is_an_invalid_request(client: TestClient) -> None:
    doc = company()
    doc["sites"][0]["timezone"] = "Mars/Olympus"
    response = call(client, "PUT", "", json=doc)
    assert (response.status_code, response.json()["error_id"]) == (422, "invalid-request")
    assert "Mars/Olympus" in response.json()["message"]
