"""HQ's fleet API: moving a SIM between sites is an admin's explicit action."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggregator.api.errors import install_error_handlers
from aggregator.fleet import store as fleet
from aggregator.fleet.routes import build_fleet_router
from aggregator.settings import AggregatorSettings
from aggregator.store.db import create_engine

ICCID = "8949000000000000011"
ADMIN, VIEWER = "admin-token-0123456789", "viewer-token-0123456789"
KEY = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    engine = create_engine(f"sqlite:///{tmp_path / 'hq.db'}")
    settings = AggregatorSettings.model_validate(
        {
            "data_dir": str(tmp_path),
            "api": {
                "tokens": [
                    {"name": "a", "token": ADMIN, "role": "admin"},
                    {"name": "v", "token": VIEWER, "role": "hq-viewer"},
                ]
            },
            "ingest": {
                "sites": [
                    {"site_id": "site-a", "public_key": KEY},
                    {"site_id": "site-b", "public_key": KEY},
                ]
            },
        }
    )
    with engine.begin() as conn:
        fleet.store_status(conn, "site-a", [{"iccid": ICCID, "channel": "gsm-1"}], [])
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_fleet_router(settings, lambda: engine))
    yield TestClient(app)
    engine.dispose()


def move(client: TestClient, token: str, site: str, iccid: str = ICCID) -> httpx.Response:
    response: httpx.Response = client.post(
        f"/api/v1/fleet/sims/{iccid}/move",
        json={"site": site},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response


def test_only_an_admin_moves_a_sim_to_a_known_site(client: TestClient) -> None:
    assert move(client, VIEWER, "site-b").json()["error_id"] == "role-forbidden"
    assert move(client, ADMIN, "site-x").json()["error_id"] == "unknown-site"
    assert move(client, ADMIN, "site-b", "0000").status_code == 404
    answer = move(client, ADMIN, "site-b")
    assert answer.status_code == 200
    assert answer.json() == {"iccid": ICCID, "from_site": "site-a", "site_id": "site-b"}
    sim = client.get(
        f"/api/v1/fleet/sims/{ICCID}", headers={"Authorization": f"Bearer {ADMIN}"}
    ).json()
    assert (sim["site_id"], sim["status"]) == ("site-b", "moved")
