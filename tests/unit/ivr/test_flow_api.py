"""Flow versions over a real LMDB store and the /api/v1/ivr/flows routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from appliance.ivr.routes import build_ivr_router
from appliance.ivr.store import FlowRegistry, FlowStore
from appliance.ivr.validate import Known, parse_flow
from appliance.store import Store
from drivers.daemon.settings_base import ApiToken

ADMIN, VIEWER, OPERATOR = "a" * 32, "v" * 32, "o" * 32
TOKENS = [ApiToken(name="admin", token=ADMIN, role="admin"),
          ApiToken(name="viewer", token=VIEWER, role="viewer"),
          ApiToken(name="ops", token=OPERATOR, role="operator")]  # fmt: skip


def known(flows: set[str]) -> Known:
    return Known(extensions={"1001", "1002"}, ring_groups=set(), flows=flows, prompts=set())


def doc(number: str) -> dict[str, Any]:
    return {"start": "go", "nodes": {"go": {"type": "extension", "number": number}}}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


def registry(store: Store) -> FlowRegistry:
    configured = {"main": parse_flow("main", doc("1001"), known({"main"}))}
    reg = FlowRegistry(configured, known)
    reg.attach(FlowStore(store))
    return reg


def client(reg: FlowRegistry) -> TestClient:
    app = FastAPI()
    app.include_router(build_ivr_router(reg, TOKENS))
    return TestClient(app)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_put_creates_the_next_version_and_survives_a_restart(store: Store) -> None:
    reg = registry(store)
    first = reg.get("main")
    assert first is not None
    assert first.version == 1
    assert reg.put("main", doc("1002")).version == 2
    again = registry(store).get("main")
    assert again is not None
    assert (again.version, again.source) == (2, "api")
    assert again.flow.nodes["go"].number == "1002"  # type: ignore[union-attr]
    assert first.flow.nodes["go"].number == "1001"  # type: ignore[union-attr]


def test_viewers_read_flows_and_only_admins_replace_them(store: Store) -> None:
    api = client(registry(store))
    listed = api.get("/api/v1/ivr/flows", headers=auth(VIEWER))
    assert listed.status_code == 200
    assert [f["name"] for f in listed.json()["flows"]] == ["main"]
    one = api.get("/api/v1/ivr/flows/main", headers=auth(VIEWER)).json()
    assert one["flow"]["nodes"]["go"] == {"type": "extension", "number": "1001"}
    refused = api.put("/api/v1/ivr/flows/main", json=doc("1002"), headers=auth(OPERATOR))
    assert refused.status_code == 403
    assert refused.json()["detail"]["error_id"] == "role-forbidden"
    assert api.put("/api/v1/ivr/flows/main", json=doc("1002")).status_code == 401
    put = api.put("/api/v1/ivr/flows/main", json=doc("1002"), headers=auth(ADMIN))
    assert put.status_code == 200
    assert put.json()["version"] == 2


def test_an_invalid_flow_is_refused_whole_with_its_nodes_named(store: Store) -> None:
    reg = registry(store)
    api = client(reg)
    bad = {"start": "go", "nodes": {"go": {"type": "extension", "number": "1999"},
                                    "lost": {"type": "hangup"}}}  # fmt: skip
    answer = api.put("/api/v1/ivr/flows/main", json=bad, headers=auth(ADMIN))
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail["error_id"] == "ivr-flow-invalid"
    assert {p["node"] for p in detail["details"]["problems"]} == {"go", "lost"}
    current = reg.get("main")
    assert current is not None
    assert current.version == 1


def test_an_unknown_flow_is_404_and_a_bad_name_422(store: Store) -> None:
    api = client(registry(store))
    missing = api.get("/api/v1/ivr/flows/nope", headers=auth(VIEWER))
    assert missing.status_code == 404
    assert missing.json()["detail"]["error_id"] == "ivr-flow-not-found"
    assert api.put("/api/v1/ivr/flows/Bad Name", json=doc("1001"),
                   headers=auth(ADMIN)).status_code == 422  # fmt: skip


def test_flows_cannot_be_replaced_before_the_store_is_open() -> None:
    reg = FlowRegistry({}, known)
    answer = client(reg).put("/api/v1/ivr/flows/new", json=doc("1001"), headers=auth(ADMIN))
    assert answer.status_code == 503
    assert answer.json()["detail"]["error_id"] == "ivr-not-started"
