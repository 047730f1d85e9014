"""The local call API over a real store: auth, CDR search, recordings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from appliance.pbx.api import build_router
from appliance.pbx.calls import CallService
from appliance.pbx.cdr import CdrBuilder
from appliance.pbx.errors import PbxNotStartedError
from appliance.pbx.recordings import RecordingService
from appliance.store import Store
from drivers.runtime.settings_base import ApiToken

TOKEN = "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


Parts = tuple[httpx.AsyncClient, CallService, RecordingService]


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    store = Store.open(tmp_path / "store", 16)
    calls = CallService(store, CdrBuilder("site-a", {"1001": "Alice"}))
    recordings = RecordingService(store, calls, tmp_path / "spool", tmp_path / "wav")
    app = FastAPI()
    tokens = [ApiToken(name="ops", token=TOKEN)]
    app.include_router(build_router(lambda: calls, lambda: recordings, tokens))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pbx") as client:
        yield client, calls, recordings
    store.close()


async def test_requests_without_a_valid_token_get_401(parts: Parts) -> None:
    client = parts[0]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await client.get("/api/v1/calls", headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"]["error_id"] == "unauthorized"


async def test_live_calls_and_cdr_search(parts: Parts) -> None:
    client, calls, _ = parts
    base = {"from_user": "1001", "request_user": "1002", "ts": "1790000000"}
    calls.handle({"event": "invite", "call_id": "live", **base})
    calls.handle({"event": "invite", "call_id": "gone", **base})
    calls.handle({"event": "failed", "call_id": "gone", "code": 486, "reason": "busy", **base})
    live = (await client.get("/api/v1/calls", headers=AUTH)).json()["calls"]
    assert [c["call_id"] for c in live] == ["live"]
    found = (await client.get("/api/v1/cdrs?disposition=busy&limit=10", headers=AUTH)).json()
    assert [c["call_id"] for c in found["cdrs"]] == ["gone"]
    assert found["next_cursor"] is None
    bad = await client.get("/api/v1/cdrs?disposition=nope", headers=AUTH)
    assert bad.status_code == 422
    assert bad.json()["detail"]["error_id"] == "invalid-disposition"


async def test_recording_metadata_and_wav_download(parts: Parts, tmp_path: Path) -> None:
    client, _, recordings = parts
    wav = tmp_path / "r.wav"
    wav.write_bytes(b"RIFF....WAVE")
    recordings.index.put("r1", {"recording_id": "r1", "path": str(wav)})
    assert (await client.get("/api/v1/recordings/r1", headers=AUTH)).json()["path"] == str(wav)
    download = await client.get("/api/v1/recordings/r1/wav", headers=AUTH)
    assert download.content == b"RIFF....WAVE"
    assert download.headers["content-type"] == "audio/wav"
    missing = await client.get("/api/v1/recordings/nope", headers=AUTH)
    assert (missing.status_code, missing.json()["detail"]["error_id"]) == (
        404,
        "recording-not-found",
    )


async def test_routes_answer_503_until_the_pbx_has_started() -> None:
    def not_started() -> Any:
        raise PbxNotStartedError("not started")

    app = FastAPI()
    tokens = [ApiToken(name="ops", token=TOKEN)]
    app.include_router(build_router(not_started, not_started, tokens))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pbx") as client:
        response = await client.get("/api/v1/calls", headers=AUTH)
    assert (response.status_code, response.json()["detail"]["error_id"]) == (
        503,
        "pbx-not-started",
    )
