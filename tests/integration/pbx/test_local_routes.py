"""Calls decided by Kamailio from the local and trunk routes, without the chain: between
local phones, break-outs through a SIP trunk and DIDs from a trunk."""

from __future__ import annotations

import asyncio
import random
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest

from appliance.pbx.assembly import build_exchange
from appliance.pbx.deciders import POLICY, RouteQuery
from appliance.pbx.dialplan import Decision
from appliance.pbx.exchange import BranchExchange
from appliance.pbx.settings import (
    DialPlanSettings,
    InboundRoute,
    MediaSettings,
    OutboundRoute,
    PbxSettings,
    RingGroup,
    Trunk,
)
from appliance.store import Outbox, Store
from drivers.sip.errors import RpcError
from drivers.sip.kamailio_config import Subscriber
from tests.integration.pbx.harness import (
    DOMAIN,
    EXTENSIONS,
    Phone,
    connect_call,
    free_udp_tcp_port,
    media,
    no_daemons_left,
    password,
    require_debs,
    sipp_media_port,
)
from tests.integration.pbx.test_dialplan_calls import TRUNK_UAC, TRUNK_UAS

OWNED = "+4930555000"

SUBSCRIBERS = [Subscriber(n, password(n), name) for n, name in EXTENSIONS.items()]


class Asked:
    """A decider that did not declare it keeps local calls: it sees what the chain is asked."""

    name = "asked"

    def __init__(self) -> None:
        self.queries: list[tuple[str, str]] = []

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        self.queries.append((query.caller, query.dialled))
        return decision


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


@pytest.fixture
def trunk_ports() -> tuple[int, int]:
    """The outbound trunk's and the inbound trunk's ports (sipp listens or sends there)."""
    return free_udp_tcp_port(15000, 17999), free_udp_tcp_port(15000, 17999)


@pytest.fixture
async def exchange(
    tmp_path: Path, store: Store, trunk_ports: tuple[int, int]
) -> AsyncIterator[BranchExchange]:
    require_debs()
    rtp = random.randrange(30000, 59000, 200)
    out_port, in_port = trunk_ports
    dialplan = DialPlanSettings(
        owned_numbers=(OWNED,),
        trunks=(Trunk(name="carrier", host="127.0.0.1", port=out_port),
                Trunk(name="carrier-in", host="127.0.0.1", port=in_port)),
        outbound=(OutboundRoute(name="national", pattern="0Z.", trunk="carrier", strip=1,
                                prepend="+49", caller_id=OWNED),),
        ring_groups=(RingGroup(number="600", members=("1002",)),),
        inbound=(InboundRoute(did=OWNED, target="600"),),
        class_of_service={"1003": "internal"},
    )  # fmt: skip
    settings = PbxSettings(
        sip_port=free_udp_tcp_port(),
        evapi_port=free_udp_tcp_port(),
        rtpengine_ng_port=free_udp_tcp_port(),
        route_port=free_udp_tcp_port(),
        rtp_port_min=rtp,
        rtp_port_max=rtp + 199,
        kamailio_children=2,
        no_answer_s=3,
        media=MediaSettings.model_validate(media()),
        dialplan=dialplan,
    )
    pbx = build_exchange(settings, "site-a", DOMAIN, SUBSCRIBERS, lambda: store, tmp_path)
    try:
        yield pbx
    finally:
        await pbx.stop()
    assert no_daemons_left(tmp_path)


@contextmanager
def registered(pbx: BranchExchange, root: Path, *numbers: str) -> Iterator[list[Phone]]:
    address = SimpleNamespace(sip_port=pbx.settings.sip_port)
    started = [Phone(address, number, 600, root) for number in numbers]
    try:
        for phone in started:
            assert phone.registered() == 200
        yield started
    finally:
        for phone in started:
            phone.close()


def decisions(pbx: BranchExchange) -> float:
    """How many calls the routing chain decided."""
    (metric,) = pbx.decision_seconds.collect()
    return float(next(s.value for s in metric.samples if s.name.endswith("_count")))


def call_and_hang_up(caller: Phone, callee: Phone, number: str) -> None:
    caller.send("call", to=number)
    callee.answer()
    caller.state("CONFIRMED")
    caller.send("hangup")
    callee.state("DISCONNECTED")
    caller.state("DISCONNECTED")


def cdrs(store: Store) -> list[dict[str, Any]]:
    return [msgpack.unpackb(p, raw=False) for _, p in Outbox(store, "cdr").read_batch()]


async def wait_cdrs(store: Store, count: int) -> list[dict[str, Any]]:
    for _ in range(200):
        found = cdrs(store)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} CDRs expected, saw {cdrs(store)}")


async def test_local_calls_never_ask_the_chain_and_get_their_cdrs(
    exchange: BranchExchange, store: Store, tmp_path: Path
) -> None:
    await exchange.start()
    with registered(exchange, tmp_path, "1001", "1002") as (alice, bob):
        await asyncio.to_thread(call_and_hang_up, alice, bob, "1002")
        await asyncio.to_thread(call_and_hang_up, alice, bob, "600")
        assert decisions(exchange) == 0
        alice.send("call", to="1999")
        event = await asyncio.to_thread(alice.state, "DISCONNECTED")
        assert event["code"] == 404
    assert decisions(exchange) == 1
    found = await wait_cdrs(store, 3)
    routes = sorted((c["callee"]["number"], c["disposition"], c["route"]) for c in found)
    assert [r[:2] for r in routes] == [
        ("1002", "answered"), ("1999", "failed"), ("600", "answered"),
    ]  # fmt: skip
    assert (routes[0][2], routes[2][2]) == ("extension", "group:600")
    assert all(c["recording_id"] for c in found if c["disposition"] == "answered")


async def test_changed_extensions_reach_kamailio_without_a_restart(
    exchange: BranchExchange,
) -> None:
    await exchange.start()
    pid = exchange.kamailio.daemon.pid
    added = [*SUBSCRIBERS[1:], Subscriber("1004", password("1004"), "Dan")]
    assert not await exchange.apply(DOMAIN, added)
    assert exchange.kamailio.daemon.pid == pid
    answer = await exchange.events.rpc("htable.get", "local", "1004")
    assert '"members":"1004"' in str(answer)
    with pytest.raises(RpcError):
        await exchange.events.rpc("htable.get", "local", "1001")


async def test_a_decider_that_may_change_local_calls_is_asked_about_them(
    exchange: BranchExchange, tmp_path: Path
) -> None:
    asked = Asked()
    exchange.chain.add(asked, POLICY)
    await exchange.start()
    with registered(exchange, tmp_path, "1001", "1002") as (alice, bob):
        await asyncio.to_thread(connect_call, alice, bob)
        alice.send("hangup")
        await asyncio.to_thread(bob.state, "DISCONNECTED")
    assert asked.queries == [("1001", "1002")]


def sipp(scenario: str, port: int, root: Path, *args: str) -> subprocess.Popen[bytes]:
    """One sipp call (``-m 1``) with ``scenario``, sending from or listening on ``port``."""
    path = root / f"sipp-{port}.xml"
    path.write_text(scenario)
    with (root / f"sipp-{port}.out").open("wb") as out:
        return subprocess.Popen(
            ["sipp", "-i", "127.0.0.1", "-nostdin", "-timeout", "30s", "-m", "1",
             "-cp", str(free_udp_tcp_port()), "-mp", str(sipp_media_port()),
             "-sf", str(path), "-p", str(port), *args],
            cwd=root, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def reaped(proc: subprocess.Popen[bytes]) -> int:
    """sipp's exit code (0: its call went as scripted), killed after 35 s."""
    try:
        return proc.wait(timeout=35)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def break_out(caller: Phone, number: str, trunk: subprocess.Popen[bytes]) -> None:
    caller.send("call", to=number)
    caller.state("CONFIRMED", timeout=20)
    caller.send("hangup")
    caller.state("DISCONNECTED", timeout=20)
    assert reaped(trunk) == 0


async def test_break_outs_and_dids_never_ask_the_chain_and_keep_their_cdrs(
    exchange: BranchExchange, store: Store, tmp_path: Path, trunk_ports: tuple[int, int]
) -> None:
    await exchange.start()
    out_port, in_port = trunk_ports
    log = tmp_path / "trunk.log"
    with registered(exchange, tmp_path, "1001", "1002", "1003") as (alice, bob, carol):
        trunk = sipp(TRUNK_UAS, out_port, tmp_path, "-trace_msg", "-message_file", str(log))
        await asyncio.to_thread(break_out, alice, "0301234567", trunk)
        caller = sipp(TRUNK_UAC, in_port, tmp_path, "-s", OWNED,
                      f"127.0.0.1:{exchange.settings.sip_port}")  # fmt: skip
        await asyncio.to_thread(bob.answer, 20)
        assert await asyncio.to_thread(reaped, caller) == 0
        assert decisions(exchange) == 0
        carol.send("call", to="0301234567")
        refused = await asyncio.to_thread(carol.state, "DISCONNECTED", 20)
        assert refused["code"] == 403
    assert decisions(exchange) == 1
    messages = log.read_text()
    assert f"INVITE sip:+49301234567@127.0.0.1:{out_port}" in messages
    assert f"P-Asserted-Identity: <sip:{OWNED}@{DOMAIN}>" in messages
    found = await wait_cdrs(store, 3)
    rows = sorted((c["disposition"], c["direction"], c["route"], c["trunk"] or "") for c in found)
    assert rows == [
        ("answered", "inbound", f"inbound:{OWNED}", ""),
        ("answered", "outbound", "national", "carrier"),
        ("failed", "internal", "national", ""),
    ], rows
    assert all(c["recording_id"] for c in found if c["disposition"] == "answered")


async def test_a_new_extension_breaks_out_from_kamailios_tables_on_its_next_call(
    exchange: BranchExchange, tmp_path: Path, trunk_ports: tuple[int, int]
) -> None:
    await exchange.start()
    added = [*SUBSCRIBERS, Subscriber("1004", password("1004"), "Dan")]
    assert not await exchange.apply(DOMAIN, added)
    assert "2" in str(await exchange.events.rpc("htable.get", "callers", "1004"))
    with registered(exchange, tmp_path, "1004") as (dan,):
        trunk = sipp(TRUNK_UAS, trunk_ports[0], tmp_path)
        await asyncio.to_thread(break_out, dan, "0301234567", trunk)
    assert decisions(exchange) == 0
