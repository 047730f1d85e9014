"""HQ's API finds a CDR's recording: available (downloadable), pending or expired."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aggregator.api import mount_api
from aggregator.recordings import RecordingReceiver
from aggregator.settings import AggregatorSettings
from aggregator.store.cdrs import CdrStore
from aggregator.store.db import create_engine
from aggregator.store.schema import recordings
from drivers.sync.protocol import RecChunk, RecDone, RecOffer
from tests.sync_env import make_cdr

TOKEN = "hq-token-0123456789ab"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings(tmp_path: Path) -> AggregatorSettings:
    return AggregatorSettings.model_validate(
        {
            "data_dir": str(tmp_path),
            "api": {"tokens": [{"name": "h", "token": TOKEN, "role": "hq-viewer"}]},
            "recordings": {"retention_days": 1},
        }
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'agg.db'}")
    yield eng
    eng.dispose()


def upload(rx: RecordingReceiver, rid: str, payload: bytes) -> None:
    offer = RecOffer(rid, len(payload), hashlib.sha256(payload).hexdigest(), {"cdr_id": rid})
    rx.offer("site-a", offer)
    assert rx.chunk("site-a", RecChunk(rid, 0, payload)) == RecDone(rid, True, "stored")


def test_cdrs_show_their_recording_state_and_the_download_answers_by_state(
    settings: AggregatorSettings, engine: sa.Engine
) -> None:
    CdrStore(engine).ingest(
        "site-a",
        [
            (1, make_cdr(1, recording_id="r-avail")),
            (2, make_cdr(2, recording_id="r-old")),
            (3, make_cdr(3, recording_id="r-pending")),
            (4, make_cdr(4)),
        ],
    )
    wav, old = random.randbytes(3000), random.randbytes(2000)
    rx = RecordingReceiver(engine, settings.recordings_dir(), 16, settings.recordings)
    try:
        upload(rx, "r-old", old)
        with engine.begin() as conn:
            conn.execute(sa.update(recordings).values(stored_ms=0))
        upload(rx, "r-avail", wav)
        assert rx.sweep() == (0, 1)
    finally:
        rx.close()
    app = FastAPI()
    mount_api(app, settings, lambda: engine)
    client = TestClient(app)
    page = client.get("/api/v1/cdrs", params={"site": "site-a"}, headers=AUTH).json()["cdrs"]
    shown = {c["recording_id"]: c["recording"] for c in page}
    assert shown == {
        "r-avail": {"state": "available", "url": "/api/v1/recordings/site-a/r-avail"},
        "r-old": {"state": "expired", "url": None},
        "r-pending": {"state": "pending", "url": None},
        None: None,
    }
    download = client.get(shown["r-avail"]["url"], headers=AUTH)
    assert download.status_code == 200
    assert download.content == wav
    assert download.headers["X-Content-SHA256"] == hashlib.sha256(wav).hexdigest()
    expired = client.get("/api/v1/recordings/site-a/r-old", headers=AUTH)
    assert (expired.status_code, expired.json()["error_id"]) == (410, "recording-expired")
    unknown = client.get("/api/v1/recordings/site-a/r-pending", headers=AUTH)
    assert (unknown.status_code, unknown.json()["error_id"]) == (404, "unknown-recording")
