"""The HQ API over each module's ``engine``: an HQ viewer and a viewer of site-b only."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggregator.api import mount_api
from aggregator.settings import AggregatorSettings

HQ, BRANCH = "h" * 32, "b" * 32


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, engine: sa.Engine) -> TestClient:
    settings = AggregatorSettings.model_validate(
        {
            "data_dir": str(tmp_path_factory.mktemp("hq")),
            "api": {
                "tokens": [
                    {"name": "h", "token": HQ, "role": "hq-viewer"},
                    {"name": "b", "token": BRANCH, "role": "site-viewer", "sites": ["site-b"]},
                ]
            },
        }
    )
    app = FastAPI()
    mount_api(app, settings, lambda: engine)
    return TestClient(app)
