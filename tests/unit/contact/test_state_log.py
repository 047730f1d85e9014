"""The agent state log: each change of an agent goes into the ``agent-state`` outbox once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from appliance.contact.state_log import AGENT_OUTBOX
from appliance.store import Outbox, Store
from drivers.sync.agent_states import AgentStateChange, parse_agent_state
from drivers.sync.records import RecordError
from tests.unit.contact.test_service import Rig


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


def logged(store: Store) -> list[tuple[str, str, str]]:
    entries = Outbox(store, AGENT_OUTBOX).read_batch(limit=1000)
    changes = [parse_agent_state(raw) for _, raw in entries]
    return [(c.agent, c.state, c.reason) for c in changes]


def test_every_state_an_agent_passes_through_is_logged_once(store: Store) -> None:
    async def main() -> None:
        rig = Rig(store)
        await rig.service.start(store)
        rig.service.login("1003")
        rig.service.login("1003")  # no change: nothing logged
        rig.caller("c1", "2001")
        rig.event("agent-answered", "c1", agent="1003")
        rig.event("agent-ended", "c1", agent="1003", answered=True)
        rig.clock.now += 10
        rig.service.tick()
        rig.service.pause("1003", "lunch")
        rig.service.registrations(["1004"])  # 1003's phone is gone
        rig.service.resume("1003")
        await rig.service.stop()

    asyncio.run(main())
    assert logged(store) == [
        ("1003", "logged-out", ""), ("1004", "logged-out", ""),  # as restored at start
        ("1003", "available", ""), ("1003", "ringing", ""), ("1003", "on-call", ""),
        ("1003", "wrap-up", ""), ("1003", "available", ""), ("1003", "paused", "lunch"),
        ("1003", "paused", "lunch"), ("1003", "available", ""),
    ]  # fmt: skip
    last = parse_agent_state(Outbox(store, AGENT_OUTBOX).read_batch(limit=1000)[-1][1])
    assert last.registered is False


def test_a_restart_logs_each_agent_as_it_comes_back(store: Store) -> None:
    async def first() -> None:
        rig = Rig(store)
        await rig.service.start(store)
        rig.service.login("1003")
        rig.caller("c1", "2001")
        rig.event("agent-answered", "c1", agent="1003")  # on a call when the box dies
        await rig.service.stop()

    async def second() -> None:
        rig = Rig(store)
        await rig.service.start(store)
        await rig.service.stop()

    asyncio.run(first())
    before = len(logged(store))
    asyncio.run(second())
    assert logged(store)[before:] == [("1003", "available", ""), ("1004", "logged-out", "")]


@pytest.mark.parametrize(
    ("doc", "error_id"),
    [
        ({"agent": "1003", "state": "dancing", "at": 1.8e9}, "record-agent-state-invalid"),
        ({"agent": "1003", "state": "paused", "at": 1.8e12}, "record-agent-state-invalid"),
        ({"agent": "1003", "state": "paused", "at": float("nan")}, "record-agent-state-invalid"),
        ({"agent": "", "state": "paused", "at": 1.8e9}, "record-agent-state-invalid"),
        ({"agent": "1003; DROP", "state": "paused", "at": 1.8e9}, "record-agent-state-invalid"),
        ({"agent": 1003, "state": "paused", "at": 1.8e9}, "record-agent-state-invalid"),
        ({"agent": "1003", "state": "paused", "at": 1.8e9, "reason": "x" * 65},
         "record-agent-state-invalid"),
        ({"agent": "1003", "state": "paused"}, "record-agent-state-invalid"),
        ([1, 2], "record-not-map"),
    ],
)  # fmt: skip
def test_records_a_site_got_wrong_are_refused_with_an_error_id(doc: object, error_id: str) -> None:
    with pytest.raises(RecordError) as caught:
        parse_agent_state(msgpack.packb(doc))
    assert caught.value.error_id == error_id


def test_garbage_bytes_are_refused() -> None:
    with pytest.raises(RecordError) as caught:
        parse_agent_state(b"\xc1\xc1")
    assert caught.value.error_id == "record-not-msgpack"


def test_a_change_reads_back_as_it_was_packed() -> None:
    change = AgentStateChange(agent="1003", state="paused", reason="lunch", at=1.8e9,
                              registered=False)  # fmt: skip
    assert parse_agent_state(change.pack()) == change
    whole_seconds = msgpack.packb({"agent": "1003", "state": "available", "at": 1800000000})
    assert parse_agent_state(whole_seconds).at == 1.8e9


def test_changes_on_the_way_to_an_offer_are_committed_just_after_it(store: Store) -> None:
    seen: dict[str, list[tuple[str, str, str]]] = {}

    async def main() -> None:
        rig = Rig(store)
        await rig.service.start(store)
        rig.service.login("1003")  # durable: committed with the agent's state
        rig.caller("c1", "2001")  # offered: ringing is staged, the offer sent first
        seen["at the offer"] = logged(store)
        await asyncio.sleep(0)
        seen["after the step"] = logged(store)
        await rig.service.stop()

    asyncio.run(main())
    assert ("1003", "ringing", "") not in seen["at the offer"]
    assert seen["at the offer"][-1] == ("1003", "available", "")
    assert seen["after the step"][-1] == ("1003", "ringing", "")
