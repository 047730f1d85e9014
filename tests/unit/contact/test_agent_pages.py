"""The agent and supervisor pages in process: the real contact service and supervision
service behind the pages, a fake media worker, FastAPI's test client as the browser.

Sign-in with an API token, CSRF on every POST, roles, the agent's actions reaching the
ACD, the screen pop of a ringing and a connected call, the API's hang-up and transfer
reaching the worker, the supervisor page with its refusals and a monitor call."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from appliance.console import mount_agent_pages
from appliance.contact.agent_calls import AgentCalls
from appliance.contact.members import Members
from appliance.contact.refusals import SpokenRefusals
from appliance.contact.service import ContactService
from appliance.contact.settings import ContactSettings
from appliance.contact.supervision import Held, SupervisionService
from appliance.contact.wiring import ContactCentre
from appliance.store import Store
from drivers.daemon.settings_base import ApiToken
from drivers.media.protocol import Command
from drivers.media.tts import EspeakTts
from drivers.sip.evapi import EvapiClient
from tests.media_wire import ev, wire

SETTINGS = ContactSettings.model_validate(
    {
        "queues": {"support": {"number": "700", "agents": ["1003"]}},
        "supervisors": {"1002": {"queues": ["support"]}},
    }
)
OPERATOR, VIEWER = "operator-token-0123456789", "viewer-token-0123456789ab"
TOKENS = [
    ApiToken(name="ops", token=OPERATOR, role="operator"),
    ApiToken(name="wall", token=VIEWER, role="viewer"),
]
EXTENSIONS = frozenset({"1001", "1002", "1003", "1005"})


class FakeWorker:
    address = "127.0.0.1:5099"

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, command: Command) -> bool:
        self.sent.append(wire(command))
        return True


class Site:
    def __init__(self, store: Store, tts_dir: Path) -> None:
        self.worker = FakeWorker()
        self.service = ContactService(SETTINGS, {}, lambda _c, _f: None)
        supervision = SupervisionService(SETTINGS, self.held, self.service.cti, lambda *_: None)
        calls = AgentCalls(self.service, lambda: EXTENSIONS)
        evapi = EvapiClient("127.0.0.1", 9, lambda _e: None)
        members = Members(self.service, lambda: EXTENSIONS)
        refusals = SpokenRefusals(EspeakTts(tts_dir), "en", {})
        self.contact = ContactCentre(
            self.service, supervision, lambda: store, evapi, calls, members, refusals
        )
        app = FastAPI()
        app.include_router(self.contact.router(TOKENS))
        mount_agent_pages(app, self.contact, TOKENS)
        self.client = TestClient(app)

    def held(self, agent: str) -> Held | None:
        found = self.service.agent_call(agent)
        return None if found is None else Held(found[0], found[1], self.worker)

    def event(self, state: str, call_id: str, **extra: Any) -> None:
        self.service.on_event(
            self.worker, ev({"ev": "queue", "state": state, "id": call_id, **extra})
        )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    store = Store.open(tmp_path / "store", 16)
    yield Site(store, tmp_path / "tts")
    store.close()


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def sign_in(client: TestClient, token: str = OPERATOR) -> str:
    """Sign in; the CSRF token of the signed-in session."""
    form = client.get("/console/sign-in")
    answer = client.post("/console/sign-in", data={"token": token, "csrf_token": csrf(form.text)})
    assert answer.status_code == 200, answer.text
    return csrf(client.get("/console/agent/1003").text)


def test_pages_need_a_signed_in_token_and_every_post_its_csrf_token(site: Site) -> None:
    client = site.client
    assert client.get("/console/agent/1003", follow_redirects=False).headers["location"] == (
        "/console/sign-in"
    )
    form = client.get("/console/sign-in")
    cookie = form.headers["set-cookie"].lower()
    for part in ("httponly", "samesite=strict", "path=/console"):
        assert part in cookie
    refused = client.post(
        "/console/sign-in", data={"token": "x" * 20, "csrf_token": csrf(form.text)}
    )
    assert refused.status_code == 401
    token = sign_in(client)
    no_csrf = client.post("/console/agent/1003/login")
    assert (no_csrf.status_code, 'data-error-id="csrf-token-invalid"' in no_csrf.text) == (
        403,
        True,
    )
    assert site.service.acd.agents["1003"].state == "logged-out"
    assert client.post("/console/agent/1003/login", data={"csrf_token": token}).status_code == 200
    assert site.service.acd.agents["1003"].state == "available"
    assert "default-src 'self'" in client.get("/console/queues").headers["content-security-policy"]


def test_a_viewer_reads_the_pages_but_cannot_act(site: Site) -> None:
    token = sign_in(site.client, VIEWER)
    page = site.client.get("/console/agent/1003").text
    assert 'id="pause"' not in page
    answer = site.client.post("/console/agent/1003/login", data={"csrf_token": token})
    assert (answer.status_code, 'data-error-id="role-forbidden"' in answer.text) == (403, True)


def test_the_agent_pauses_with_a_listed_reason_and_resumes(site: Site) -> None:
    token = sign_in(site.client)
    site.client.post("/console/agent/1003/login", data={"csrf_token": token})
    paused = site.client.post(
        "/console/agent/1003/pause", data={"csrf_token": token, "reason": "lunch"}
    )
    assert 'data-state="paused"' in paused.text
    assert 'id="agent-reason">lunch' in paused.text
    assert (
        site.client.get(
            "/api/v1/contact/queues", headers={"Authorization": f"Bearer {OPERATOR}"}
        ).json()["queues"][0]["agents"][0]["reason"]
        == "lunch"
    )
    odd = site.client.post("/console/agent/1003/pause", data={"csrf_token": token, "reason": "nap"})
    assert odd.status_code == 422
    resumed = site.client.post("/console/agent/1003/resume", data={"csrf_token": token})
    assert 'data-state="available"' in resumed.text
    again = site.client.post("/console/agent/1003/resume", data={"csrf_token": token})
    assert (again.status_code, "agent-not-paused" in again.text) == (409, True)
    assert site.client.get("/console/agent/1999").status_code == 404


def test_the_screen_pop_shows_the_caller_queue_and_flow_variables(site: Site) -> None:
    token = sign_in(site.client)
    site.service.expect("queue-support", "+8613800000001", {"order": "A-17", "priority": "1"})
    site.event("start", "c1", queue="support", caller="+8613800000001")
    assert 'id="no-call"' in site.client.get("/console/agent/1003").text
    site.client.post("/console/agent/1003/login", data={"csrf_token": token})
    ringing = site.client.get("/console/agent/1003", headers={"HX-Request": "true"}).text
    assert ringing.startswith('<div id="agent-live"'), "htmx gets the live part only"
    assert 'Ringing: <span id="pop-caller">+8613800000001<' in ringing
    assert 'data-variable="order">A-17<' in ringing
    assert 'id="pop-queue">support' in ringing
    site.event("agent-ringing", "c1", agent="1003")
    site.event("agent-answered", "c1", agent="1003")
    talking = site.client.get("/console/agent/1003").text
    assert 'On call: <span id="pop-caller">+8613800000001<' in talking
    assert 'id="pop-talk"' in talking
    assert 'data-variable="order">A-17<' in talking
    site.event("agent-ended", "c1", agent="1003", answered=True)
    assert 'id="no-call"' in site.client.get("/console/agent/1003").text


def test_hang_up_and_transfer_reach_the_worker_holding_the_call(site: Site) -> None:
    token = sign_in(site.client)
    refused = site.client.post("/console/agent/1003/hangup", data={"csrf_token": token})
    assert (refused.status_code, "agent-not-on-call" in refused.text) == (409, True)
    site.client.post("/console/agent/1003/login", data={"csrf_token": token})
    site.event("start", "c1", queue="support", caller="1001")
    site.event("agent-answered", "c1", agent="1003")
    for to in ("1009", "1003", "12; drop", ""):
        bad = site.client.post("/console/agent/1003/transfer", data={"csrf_token": token, "to": to})
        assert (bad.status_code, 'role="alert">unknown-extension' in bad.text) == (422, True), to
    moved = site.client.post(
        "/console/agent/1003/transfer", data={"csrf_token": token, "to": "1005"}
    )
    assert (moved.status_code, "Transferring the caller to 1005" in moved.text) == (200, True)
    assert site.worker.sent[-1] == {"cmd": "queue-transfer", "to": "1005", "id": "c1"}
    api = site.client.post(
        "/api/v1/contact/agents/1003/hangup", headers={"Authorization": f"Bearer {OPERATOR}"}
    )
    assert api.json() == {
        "agent": "1003",
        "call_id": "c1",
        "queue": "support",
        "action": "hangup",
        "to": None,
    }
    assert site.worker.sent[-1] == {"cmd": "queue-hangup", "id": "c1"}
    viewer = site.client.post(
        "/api/v1/contact/agents/1003/hangup", headers={"Authorization": f"Bearer {VIEWER}"}
    )
    assert viewer.status_code == 403


def test_answer_on_desk_and_three_way_reach_the_worker_holding_the_caller(site: Site) -> None:
    token = sign_in(site.client)
    refused = site.client.post("/console/agent/1003/answer", data={"csrf_token": token})
    assert (refused.status_code, "agent-not-ringing" in refused.text) == (409, True)
    site.client.post("/console/agent/1003/login", data={"csrf_token": token})
    site.event("start", "c1", queue="support", caller="1001")
    assert site.worker.sent[-1]["cmd"] == "queue-offer"
    desk = site.client.post("/console/agent/1003/answer", data={"csrf_token": token})
    assert (desk.status_code, "Answering on the desk phone" in desk.text) == (200, True)
    assert site.worker.sent[-1] == {"cmd": "queue-answer", "id": "c1", "agent": "1003"}
    early = site.client.post(
        "/console/agent/1003/three-way", data={"csrf_token": token, "party": "1005"}
    )
    assert (early.status_code, "agent-not-on-call" in early.text) == (409, True)
    site.event("agent-answered", "c1", agent="1003")
    bad = site.client.post(
        "/console/agent/1003/three-way", data={"csrf_token": token, "party": "12; drop"}
    )
    assert bad.status_code == 422
    added = site.client.post(
        "/console/agent/1003/three-way", data={"csrf_token": token, "party": "+8613800000009"}
    )
    assert (added.status_code, "Calling +8613800000009 into the call" in added.text) == (200, True)
    assert site.worker.sent[-1]["cmd"] == "supervise-call"
    assert site.worker.sent[-1]["to"] == "+8613800000009"


def test_the_supervisor_page_lists_callers_and_rings_the_supervisor(site: Site) -> None:
    token = sign_in(site.client)
    site.event("start", "c1", queue="support", caller="1001")
    page = site.client.get("/console/queues?supervisor=1002").text
    assert 'data-caller="1001"' in page
    assert 'data-waiting="support">1<' in page
    assert 'name="supervisor" value="1002"' in page
    site.client.post("/console/agent/1003/login", data={"csrf_token": token})
    site.event("agent-answered", "c1", agent="1003")
    page = site.client.get("/console/queues?supervisor=1002").text
    assert 'data-mode="whisper"' in page
    nobody = site.client.post(
        "/console/queues/agents/1003/supervise", data={"csrf_token": token, "mode": "monitor"}
    )
    assert (nobody.status_code, "supervisor-needed" in nobody.text) == (422, True)
    spy = site.client.post(
        "/console/queues/agents/1003/supervise",
        data={"csrf_token": token, "mode": "spy", "supervisor": "1002"},
    )
    assert (spy.status_code, 'id="refusal" role="alert">unknown-mode' in spy.text) == (422, True)
    wrong = site.client.post(
        "/console/queues/agents/1003/supervise",
        data={"csrf_token": token, "mode": "monitor", "supervisor": "1001"},
    )
    assert (wrong.status_code, "not-a-supervisor" in wrong.text) == (403, True)
    rung = site.client.post(
        "/console/queues/agents/1003/supervise",
        data={"csrf_token": token, "mode": "whisper", "supervisor": "1002"},
    )
    assert (rung.status_code, "Ringing 1002" in rung.text) == (200, True)
    assert site.worker.sent[-1]["cmd"] == "supervise-call"
    assert site.worker.sent[-1]["to"] == "1002"
    switch = site.client.post(
        "/console/queues/agents/1003/supervise",
        data={"csrf_token": token, "mode": "barge", "supervisor": "1002"},
    )
    assert (switch.status_code, "not-joined" in switch.text) == (409, True)


def test_htmx_is_served_from_hqs_npm_install_and_nothing_else(site: Site) -> None:
    assert site.client.get("/console/vendor/package.json").status_code == 404
    htmx = site.client.get("/console/vendor/htmx.min.js")
    assert htmx.status_code == 200, "run npm ci in aggregator/console (./run test does)"
    assert htmx.headers["content-type"].startswith("text/javascript")
    assert b"htmx" in htmx.content[:2000]
