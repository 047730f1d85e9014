"""Calls between local phones decided by Kamailio from the local routes, without the chain."""

from __future__ import annotations

import asyncio
import random
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
from appliance.pbx.settings import DialPlanSettings, MediaSettings, PbxSettings, RingGroup
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
)

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
async def exchange(tmp_path: Path, store: Store) -> AsyncIterator[BranchExchange]:
    require_debs()
    rtp = random.randrange(30000, 59000, 200)
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
        dialplan=DialPlanSettings(ring_groups=(RingGroup(number="600", members=("1002",)),)),
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
