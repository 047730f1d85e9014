"""Dynamic queue membership: the ACD's join and part, the API (FastAPI's test client, a
fake media worker, a real LMDB store) and the members read back after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from appliance.contact.acd import Acd, AcdError
from appliance.contact.member_routes import build_member_router
from appliance.contact.members import NAMESPACE, Members
from appliance.contact.routes import build_contact_router
from appliance.contact.service import ContactService
from appliance.contact.settings import AgentSettings, ContactSettings
from appliance.store import Store
from appliance.store.state import StateStore
from drivers.daemon.settings_base import ApiToken
from drivers.media.protocol import Command, QueueEvent
from tests.media_wire import wire

SETTINGS = ContactSettings.model_validate({"queues": {
    "support": {"number": "700", "agents": ["1003"]},
    "sales": {"number": "701", "agents": ["1004"]},
}})  # fmt: skip
OPERATOR, VIEWER = "operator-token-0123456789", "viewer-token-0123456789ab"
TOKENS = [ApiToken(name="ops", token=OPERATOR, role="operator"),
          ApiToken(name="wall", token=VIEWER, role="viewer")]  # fmt: skip
EXTENSIONS = frozenset({"1003", "1004", "1005", "1006"})
MEMBER = "/api/v1/contact/queues/{}/members/{}"


class FakeWorker:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, command: Command) -> bool:
        self.sent.append(wire(command))
        return True


class Site:
    """The contact service, its members and the API, started on ``store``."""

    def __init__(self, store: Store) -> None:
        self.loop = asyncio.new_event_loop()
        self.service = ContactService(SETTINGS, {}, lambda _c, _f: None, clock=lambda: 1000.0)
        self.members = Members(self.service, lambda: EXTENSIONS, lambda n: n.startswith("2"))
        self.members.start(store)
        self.loop.run_until_complete(self.service.start(store))
        app = FastAPI()
        app.include_router(build_contact_router(self.service, TOKENS))
        app.include_router(build_member_router(self.members, TOKENS))
        self.client = TestClient(app)

    def call(self, method: str, path: str, token: str = OPERATOR,
             body: dict[str, Any] | None = None) -> tuple[int, Any]:  # fmt: skip
        answer = self.client.request(method, path, json=body,
                                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        return answer.status_code, answer.json()

    def agents(self, queue: str) -> list[str]:
        status, live = self.call("GET", "/api/v1/contact/queues", VIEWER)
        assert status == 200, live
        found = next(q for q in live["queues"] if q["name"] == queue)
        return [a["agent"] for a in found["agents"]]

    def close(self) -> None:
        self.loop.run_until_complete(self.service.stop())
        self.loop.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


@pytest.fixture
def site(store: Store) -> Iterator[Site]:
    running = Site(store)
    yield running
    running.close()


def test_the_acd_offers_a_joined_member_and_forgets_one_of_no_queue() -> None:
    acd = Acd(SETTINGS.queues)
    agent = acd.join("support", AgentSettings(extension="1005", penalty=1))
    assert (agent.number, agent.state) == ("1005", "logged-out")
    assert acd.queues["support"].numbers == ("1003", "1005")
    with pytest.raises(AcdError, match="is a member"):
        acd.join("support", AgentSettings(extension="1005"))
    acd.login("1005", 10.0)
    acd.enter("c1", "support", "2001", 11.0)
    assert [(o.call_id, o.agent) for o in acd.offers(12.0)] == [("c1", "1005")]
    with pytest.raises(AcdError, match="ringing"):
        acd.part("support", "1005")
    acd.released("c1", "1005", 13.0)
    acd.join("sales", AgentSettings(extension="1005"))
    acd.part("support", "1005")
    assert "1005" in acd.agents, "still a member of sales"
    acd.part("sales", "1005")
    assert "1005" not in acd.agents
    with pytest.raises(AcdError, match="no member"):
        acd.part("sales", "1005")


def test_an_operator_adds_a_member_who_is_offered_the_waiting_caller(site: Site) -> None:
    worker = FakeWorker()
    site.service.on_event(worker, QueueEvent("c1", "start", queue="support", caller="2001"))
    status, added = site.call("POST", MEMBER.format("support", "1005"),
                              body={"penalty": 2, "skills": {"billing": 4}})  # fmt: skip
    assert status == 200, added
    assert added == {"queue": "support", "agent": "1005", "state": "logged-out", "penalty": 2,
                     "skills": {"billing": 4}, "remote": False}  # fmt: skip
    assert site.agents("support") == ["1003", "1005"]
    assert site.call("POST", "/api/v1/contact/agents/1005/login")[0] == 200
    assert [c["agent"] for c in worker.sent if c["cmd"] == "queue-offer"] == ["1005"]


def test_membership_refusals_name_the_error(site: Site) -> None:
    def error(method: str, queue: str, extension: str, token: str = OPERATOR,
              body: dict[str, Any] | None = None) -> tuple[int, str]:  # fmt: skip
        status, answer = site.call(method, MEMBER.format(queue, extension), token, body)
        detail = answer["detail"]
        return status, detail["error_id"] if isinstance(detail, dict) else "request-invalid"

    assert error("POST", "billing", "1005") == (404, "queue-not-found")
    assert error("POST", "support", "1009") == (422, "unknown-extension")
    assert error("POST", "support", "1003") == (409, "already-member")
    assert error("DELETE", "support", "1003") == (409, "static-member")
    assert error("DELETE", "support", "1005") == (404, "not-a-member")
    assert error("POST", "support", "1005", VIEWER) == (403, "role-forbidden")
    assert error("POST", "support", "1005", body={"skills": {"Bad": 11}}) == (422, "member-invalid")
    assert error("POST", "support", "1005", body={"penalty": 100}) == (422, "request-invalid")
    assert site.agents("support") == ["1003"]


def test_another_sites_extension_joins_as_a_remote_member_and_no_other(site: Site) -> None:
    remote = {"remote": True}
    assert site.call("POST", MEMBER.format("support", "2005"))[0] == 422
    assert site.call("POST", MEMBER.format("support", "1005"), body=remote)[0] == 422
    assert site.call("POST", MEMBER.format("support", "3005"), body=remote)[0] == 422
    status, added = site.call("POST", MEMBER.format("support", "2005"), body=remote)
    assert (status, added["remote"]) == (200, True)
    assert site.service.acd.queues["support"].remote == ("2005",)


def test_members_survive_a_restart_and_a_removed_one_stays_removed(store: Store) -> None:
    first = Site(store)
    assert first.call("POST", MEMBER.format("support", "1005"))[0] == 200
    assert first.call("POST", MEMBER.format("sales", "1006"))[0] == 200
    assert (
        first.call("POST", "/api/v1/contact/agents/1005/pause", body={"reason": "lunch"})[0] == 200
    )
    status, removed = first.call("DELETE", MEMBER.format("sales", "1006"))
    assert (status, removed) == (200, {"queue": "sales", "agent": "1006", "removed": True})
    first.close()
    StateStore(store, NAMESPACE).put("gone/1007", {"extension": "1007"})
    second = Site(store)
    assert second.agents("support") == ["1003", "1005"]
    assert second.agents("sales") == ["1004"]
    agent = second.service.acd.agents["1005"]
    assert (agent.state, agent.reason) == ("paused", "lunch")
    second.close()
