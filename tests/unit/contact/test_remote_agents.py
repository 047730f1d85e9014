"""Agents at another site: availability asked of their site, legs over the inter-site route."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from appliance.contact.remote_agents import RemoteAgentDecider, RemoteAgents
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.intersite import InterSite
from appliance.routing.peers import PeerMonitor
from appliance.settings import ApplianceSettings
from drivers.sip.probe import options_request, sip_options_status, status_code
from tests.unit.routing.test_intersite import NOW, intersite, plan


class FakeProbe:
    """Answers each OPTIONS with the code configured for its user; keeps the requests."""

    def __init__(self, codes: dict[str, int | None]) -> None:
        self.codes = codes
        self.sent: list[tuple[str, int, str, str]] = []

    async def __call__(self, host: str, port: int, wait_s: float, *, user: str,
                       headers: Callable[[str], str]) -> int | None:  # fmt: skip
        self.sent.append((host, port, user, headers("probe-call-1")))
        return self.codes.get(user)


def polled(remote: RemoteAgents) -> frozenset[str]:
    asyncio.run(remote.poll_once())
    return remote.registered


def agents_at_a(numbers: set[str], probe: FakeProbe, at: InterSite | None = None) -> RemoteAgents:
    return RemoteAgents(lambda: numbers, at or intersite("a"), probe, clock=lambda: NOW)


def test_a_remote_agent_is_registered_while_its_own_site_answers_200() -> None:
    probe = FakeProbe({"2001": 200, "2002": 480, "2003": None})
    remote = agents_at_a({"2001", "2002", "2003"}, probe)
    assert polled(remote) == {"2001"}
    assert [(h, p, u) for h, p, u, _ in probe.sent] == [
        ("10.0.0.2", 5070, "2001"), ("10.0.0.2", 5070, "2002"), ("10.0.0.2", 5070, "2003"),
    ]  # fmt: skip
    probe.codes["2001"] = 480
    assert polled(remote) == frozenset()


def test_the_owning_site_admits_the_signed_probe_from_any_port_of_the_sites_address() -> None:
    probe = FakeProbe({"2001": 200})
    polled(agents_at_a({"2001"}, probe))
    (_, _, user, headers) = probe.sent[0]
    fields = dict(line.split(": ", 1) for line in headers.strip().split("\r\n"))
    query = {"peer": "1", "method": "OPTIONS", "source": "10.0.0.1:40312",
             "call_id": "probe-call-1", "dialled": user, "auth": fields["X-Callmesh-Auth"],
             "peer_caller": fields["X-Callmesh-Caller"],
             "conversation": fields["X-Callmesh-Conversation"]}  # fmt: skip
    at_b = intersite("b")
    decision = at_b.admit(plan("b", at_b), query)
    assert (decision.action, decision.targets, decision.peer_site) == ("extension", ("2001",), "a")
    as_invite = at_b.admit(plan("b", at_b), {**query, "method": "INVITE"})
    assert (as_invite.code, as_invite.reason) == (403, "untrusted-peer-source")
    elsewhere = at_b.admit(plan("b", at_b), {**query, "source": "10.0.0.9:40312"})
    assert elsewhere.reason == "untrusted-peer-source"
    forged = at_b.admit(plan("b", at_b), {**query, "dialled": "2002"})
    assert forged.reason == "peer-auth-failed"


def test_an_agent_of_a_site_the_peer_monitor_marks_down_is_not_asked_nor_available() -> None:
    async def no_answer(host: str, port: int, wait_s: float) -> bool:
        return False

    peers = PeerMonitor(lambda: None, no_answer)
    at_a = intersite("a", peers)
    probe = FakeProbe({"2001": 200})
    remote = agents_at_a({"2001"}, probe, at_a)
    assert polled(remote) == {"2001"}
    peers._record("b", "10.0.0.2:5070", False, 0.0)
    peers._record("b", "10.0.0.2:5070", False, 0.0)
    probe.sent.clear()
    assert polled(remote) == frozenset()
    assert probe.sent == []


def test_an_extension_no_other_site_owns_is_never_available(
    caplog: pytest.LogCaptureFixture,
) -> None:
    probe = FakeProbe({"1002": 200, "3005": 200})
    remote = agents_at_a({"1002", "3005"}, probe)
    with caplog.at_level(logging.WARNING):
        assert polled(remote) == frozenset()
        assert polled(remote) == frozenset()
    assert probe.sent == []
    assert [r.__dict__.get("error_id") for r in caplog.records] == ["remote-agent-unknown"] * 2


def test_a_workers_leg_to_a_remote_agent_takes_the_inter_site_route_for_any_caller() -> None:
    at_a = intersite("a")
    remote = agents_at_a({"2001"}, FakeProbe({}), at_a)
    decider = RemoteAgentDecider(remote, at_a, lambda: plan("a", at_a))
    leg = RouteQuery("+4930999000", "2001", "leg-1", raw={"media": "1"})
    decision = decider.decide(leg, None)
    assert decision is not None
    (hop,) = decision.hops
    assert (decision.action, decision.peer_site, hop.uri) == (
        "route", "b", "sip:2001@10.0.0.2:5070",
    )  # fmt: skip
    assert "X-Callmesh-Caller: +4930999000\r\n" in hop.headers
    from_phone = RouteQuery("+4930999000", "2001", "leg-1", raw={"media": "0"})
    assert decider.decide(from_phone, None) is None
    assert decider.decide(RouteQuery("+4930999000", "2002", raw={"media": "1"}), None) is None


def _settings(tmp_path: Path, agents: list[Any]) -> dict[str, Any]:
    return {"site_id": "a", "profile": "branch", "data_dir": str(tmp_path),
            "sip": {"extensions": [{"number": "1003", "password": "secret-pw-1003"}]},
            "pbx": {"enabled": True, "media": {"workers": 1}},
            "contact": {"queues": {"support": {"number": "700", "agents": agents}}}}  # fmt: skip


def test_a_remote_agent_is_marked_and_a_local_one_may_not_be(tmp_path: Path) -> None:
    agents = ["1003", {"extension": "2001", "remote": True}]
    settings = ApplianceSettings.model_validate(_settings(tmp_path, agents))
    assert settings.contact.queues["support"].remote == ("2001",)
    with pytest.raises(ValidationError, match=r"2001 are not in sip\.extensions \(another site"):
        ApplianceSettings.model_validate(_settings(tmp_path, ["1003", "2001"]))
    with pytest.raises(ValidationError, match=r"1003 are in sip\.extensions, not remote"):
        ApplianceSettings.model_validate(_settings(tmp_path, [{"extension": "1003",
                                                               "remote": True}]))  # fmt: skip


def test_an_options_request_to_a_user_carries_the_given_headers_and_call_id() -> None:
    text = options_request("10.0.0.2", 5070, 40000, "10.0.0.1", "2001", "X-A: 1\r\n", "cid-1")
    lines = text.decode().split("\r\n")
    assert lines[0] == "OPTIONS sip:2001@10.0.0.2:5070 SIP/2.0"
    assert "To: <sip:2001@10.0.0.2:5070>" in lines
    assert ("Call-ID: cid-1" in lines, "X-A: 1" in lines) == (True, True)
    assert text.endswith(b"Content-Length: 0\r\n\r\n")
    assert [status_code(b) for b in (b"SIP/2.0 480 Not registered\r\n", b"garbage", b"")] == [
        480, None, None,
    ]  # fmt: skip


def test_sip_options_status_reads_the_answer_of_a_real_udp_server() -> None:
    class Server(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.request = data
            self.transport.sendto(b"SIP/2.0 480 Not registered\r\n\r\n", addr)

    async def main() -> tuple[int | None, bytes]:
        loop = asyncio.get_running_loop()
        transport, server = await loop.create_datagram_endpoint(Server, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            code = await sip_options_status("127.0.0.1", port, 2.0, user="2001",
                                            headers=lambda cid: f"X-Call: {cid}\r\n")  # fmt: skip
        finally:
            transport.close()
        return code, server.request

    code, request = asyncio.run(main())
    assert code == 480
    call_id = next(x for x in request.decode().split("\r\n") if x.startswith("Call-ID: "))
    assert f"X-Call: {call_id.removeprefix('Call-ID: ')}\r\n" in request.decode()
