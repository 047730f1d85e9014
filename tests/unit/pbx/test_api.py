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
from appliance.pbx.dialplan import DialPlan
from appliance.pbx.errors import CallControlError, PbxNotStartedError
from appliance.pbx.media import MediaPool
from appliance.pbx.originate import OriginationService
from appliance.pbx.recordings import RecordingService
from appliance.pbx.settings import DialPlanSettings, OutboundRoute, Trunk
from appliance.store import Store
from drivers.daemon.settings_base import ApiToken
from tests.unit.pbx.call_events import call_event

TOKEN = "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}


Parts = tuple[httpx.AsyncClient, CallService, RecordingService]


DNC = "021234599"


def refuse_dnc(extension: str, number: str, source: str) -> tuple[str, str] | None:
    """A compliance check that refuses one number."""
    return ("dnc-site", f"{number} is on this site's do-not-call list") if number == DNC else None


class Control:
    """Call control over a media pool without workers, as when every worker is busy."""

    def __init__(self, calls: CallService, tmp: Path) -> None:
        plan = DialPlan(
            DialPlanSettings(
                owned_numbers=("+3215550100",),
                trunks=(Trunk(name="carrier", host="127.0.0.1"),),
                outbound=(OutboundRoute(name="national", pattern="0Z.", trunk="carrier",
                                        caller_id="+3215550100"),
                          OutboundRoute(name="international", pattern="00.",
                                        trunk="carrier", cos="international",
                                        caller_id="+3215550100")),
                class_of_service={"1001": "national"},
            ),
            ["1001"],
        )  # fmt: skip
        pool = MediaPool([], tmp)
        self.originations = OriginationService(pool, lambda: calls, lambda: plan, "test.local")
        self.originations.add_check(refuse_dnc)

    async def hangup(self, call_id: str) -> dict[str, Any]:
        raise CallControlError(404, "call-not-found", f"no call {call_id} in progress")

    async def set_recording(self, call_id: str, on: bool) -> dict[str, Any]:
        raise CallControlError(404, "call-not-found", f"no call {call_id} in progress")

    async def three_way(self, call_id: str, number: str) -> dict[str, Any]:
        call = self.originations.vet_three_way(call_id, number)
        return self.originations.three_way(call, number)

    async def trunks(self) -> list[dict[str, Any]]:
        return []

    async def gsm_channels(self) -> list[dict[str, Any]]:
        return []


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    store = Store.open(tmp_path / "store", 16)
    calls = CallService(store, CdrBuilder("site-a", {"1001": "Alice"}))
    recordings = RecordingService(store, calls, tmp_path / "spool", tmp_path / "wav")
    app = FastAPI()
    tokens = [ApiToken(name="ops", token=TOKEN, role="operator")]
    control = Control(calls, tmp_path)
    app.include_router(build_router(lambda: calls, lambda: recordings, control, tokens))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pbx") as client:
        yield client, calls, recordings
    store.close()


async def test_requests_without_a_valid_token_get_401(parts: Parts) -> None:
    client = parts[0]
    for headers, error_id in (
        ({}, "missing-token"),
        ({"Authorization": "Bearer wrong"}, "bad-token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing-token"),
    ):
        response = await client.get("/api/v1/calls", headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"]["error_id"] == error_id


async def test_live_calls_and_cdr_search(parts: Parts) -> None:
    client, calls, _ = parts
    base = {"from_user": "1001", "request_user": "1002", "ts": "1790000000"}
    calls.handle(call_event({"event": "invite", "call_id": "live", **base}))
    calls.handle(call_event({"event": "invite", "call_id": "gone", **base}))
    calls.handle(
        call_event({"event": "failed", "call_id": "gone", "code": 486, "reason": "busy", **base})
    )
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
    tokens = [ApiToken(name="ops", token=TOKEN, role="operator")]
    app.include_router(build_router(not_started, not_started, Control.__new__(Control), tokens))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pbx") as client:
        response = await client.get("/api/v1/calls", headers=AUTH)
    assert (response.status_code, response.json()["detail"]["error_id"]) == (
        503,
        "pbx-not-started",
    )


@pytest.mark.parametrize(
    ("body", "status", "error_id"),
    [
        ({"extension": "1009", "number": "021234567"}, 404, "unknown-extension"),
        ({"extension": "1001", "number": "0031201234567"}, 403, "class-of-service"),
        ({"extension": "1001", "number": "99912345"}, 422, "no-route"),
        ({"extension": "1001", "number": "021234567"}, 503, "media-workers-busy"),
        ({"extension": "1001", "number": DNC}, 403, "compliance-refused"),
    ],
)
async def test_click_to_dial_refusals_say_why(
    parts: Parts, body: dict[str, str], status: int, error_id: str
) -> None:
    client, _, _ = parts
    response = await client.post("/api/v1/calls", json=body, headers=AUTH)
    assert response.status_code == status
    assert response.json()["detail"]["error_id"] == error_id


async def test_call_control_on_unknown_calls_and_bad_bodies(parts: Parts) -> None:
    client, _, _ = parts
    gone = await client.delete("/api/v1/calls/nope", headers=AUTH)
    assert (gone.status_code, gone.json()["detail"]["error_id"]) == (404, "call-not-found")
    rec = await client.put("/api/v1/calls/nope/recording", json={"recording": True}, headers=AUTH)
    assert rec.status_code == 404
    add = await client.post("/api/v1/calls/nope/parties", json={"number": "1002"}, headers=AUTH)
    assert (add.status_code, add.json()["detail"]["error_id"]) == (404, "call-not-found")
    bad = await client.post("/api/v1/calls", json={"extension": "x"}, headers=AUTH)
    assert bad.status_code == 422
    alone = {"participants": ["1001"], "on_behalf_of": "1001"}
    assert (await client.post("/api/v1/conferences", json=alone, headers=AUTH)).status_code == 422
    twice = {"participants": ["1001", "1001"], "on_behalf_of": "1001"}
    dup = await client.post("/api/v1/conferences", json=twice, headers=AUTH)
    assert (dup.status_code, dup.json()["detail"]["error_id"]) == (422, "invalid-participants")
    op = await client.get("/api/v1/operations/nope", headers=AUTH)
    assert (op.status_code, op.json()["detail"]["error_id"]) == (404, "operation-not-found")


async def test_a_compliance_refusal_names_the_rule_and_leaves_a_refused_cdr(parts: Parts) -> None:
    client, calls, _ = parts
    conference = {"participants": ["1001", DNC], "on_behalf_of": "1001"}
    response = await client.post("/api/v1/conferences", json=conference, headers=AUTH)
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert (detail["error_id"], detail["details"]["rule"]) == ("compliance-refused", "dnc-site")
    assert "do-not-call" in detail["message"]
    page, _ = calls.search("", "refused", None, 10, "")
    assert [(c["callee"]["number"], c["hangup_cause"]) for c in page] == [
        (DNC, {"sip_code": 403, "reason": "dnc-site"})
    ]
    assert page[0]["route"] == "conference"
