"""Callback retries: a caller who does not answer its call back is tried again after
``callback_retry_s``, the agent free between tries, until the last try fails; each try is
stored so a restart neither loses nor repeats one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.contact.service import ContactService
from appliance.contact.settings import ContactSettings
from appliance.store import Store
from appliance.store.state import StateStore
from tests.media_wire import ev
from tests.unit.contact.test_service import FakeWorker, NamedEvents, Rig, settle

QUEUE = {"number": "700", "agents": ["1003"], "callback_after_s": 20, "max_wait_s": 60,
         "wrapup_s": 2, "callback_retries": 1, "callback_retry_s": 10}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


def retry_rig(store: Store, placed: FakeWorker) -> Rig:
    async def speak(text: str, language: str) -> Path:
        return Path("/tmp/said.wav")

    rig = Rig(store)
    contact = ContactSettings.model_validate({"queues": {"support": QUEUE}})
    rig.service = ContactService(contact, {}, rig.annotate, rig.clock, speak, lambda: placed)
    return rig


def worker_event(rig: Rig, placed: FakeWorker, state: str, **extra: Any) -> None:
    rig.service.on_event(placed, ev({"ev": "queue", "state": state, "id": "c1", **extra}))


def one_try(rig: Rig, placed: FakeWorker, leg: str, answered: bool) -> None:
    """The agent answers its leg, the caller's phone rings, and answers or not; the
    agent's leg ends."""
    rig.event("agent-answered", "c1", agent="1003")
    worker_event(rig, placed, "callback-ringing", agent="1003", sip_call_id=leg)
    if answered:
        worker_event(rig, placed, "callback-answered", agent="1003", sip_call_id=leg)
    else:
        worker_event(rig, placed, "callback-ended", agent="1003", answered=False,
                     sip_call_id=leg)  # fmt: skip
    worker_event(rig, placed, "agent-ended", agent="1003", answered=True)


async def requested(rig: Rig, store: Store) -> None:
    """The caller waits 20 s, hears the offer and presses 1."""
    await rig.service.start(store)
    rig.caller("c1", "2001")
    rig.clock.now += 20
    rig.service.tick()
    await settle()
    rig.event("digit", "c1", digit="1")


def offers(placed: FakeWorker) -> int:
    return len([c for c in placed.sent if c["cmd"] == "queue-callback"])


def scenario(store: Store, body: Callable[[Rig, FakeWorker], Awaitable[None]]) -> Rig:
    placed = FakeWorker()

    async def main() -> Rig:
        rig = retry_rig(store, placed)
        await requested(rig, store)
        rig.service.cti = NamedEvents()
        await body(rig, placed)
        await rig.service.stop()
        return rig

    return asyncio.run(main())


def test_a_caller_who_does_not_answer_is_tried_again_after_the_interval(store: Store) -> None:
    seen: dict[str, Any] = {}

    async def body(rig: Rig, placed: FakeWorker) -> None:
        rig.service.login("1003")
        one_try(rig, placed, "leg-1", answered=False)
        seen["agent"] = rig.service.acd.agents["1003"].state
        seen["stored"] = dict(StateStore(store, "contact-callbacks").items())["c1"]["tries"]
        rig.clock.now += 5
        rig.service.tick()
        seen["early"] = (offers(placed), rig.service.acd.agents["1003"].state)
        rig.clock.now += 5
        rig.service.tick()
        seen["due"] = offers(placed)
        one_try(rig, placed, "leg-2", answered=True)
        seen["left"] = dict(StateStore(store, "contact-callbacks").items())

    rig = scenario(store, body)
    assert seen["agent"] == "wrap-up", "the agent is free between tries"
    assert seen["stored"] == 1
    assert seen["early"] == (1, "available"), "not tried again before callback_retry_s"
    assert seen["due"] == 2
    assert rig.fields["leg-1"] == {"callback_of": "c1", "callback_queue": "support",
                                   "callback_try": "1", "callback_status": "retry"}  # fmt: skip
    assert rig.fields["leg-2"]["callback_status"] == "answered"
    assert rig.fields["leg-2"]["callback_try"] == "2"
    assert seen["left"] == {}, "answered: the callback is done"
    assert rig.service.tally.today("support", rig.clock.now).answered == 1, "once, not per try"
    assert isinstance(rig.service.cti, NamedEvents)
    names = [n for n in rig.service.cti.names if n.startswith("call.")]
    assert names == ["call.offered", "call.answered", "call.callback-ended", "call.callback-retry",
                     "call.ended", "call.offered", "call.answered", "call.callback-answered",
                     "call.ended"]  # fmt: skip


def test_after_the_last_try_the_callback_fails_and_is_forgotten(store: Store) -> None:
    seen: dict[str, Any] = {}

    async def body(rig: Rig, placed: FakeWorker) -> None:
        rig.service.login("1003")
        one_try(rig, placed, "leg-1", answered=False)
        rig.clock.now += 10
        rig.service.tick()
        rig.event("agent-answered", "c1", agent="1003")
        worker_event(rig, placed, "callback-ended", agent="1003", answered=False, code=486,
                     sip_call_id="leg-2")  # fmt: skip
        seen["left"] = dict(StateStore(store, "contact-callbacks").items())
        rig.clock.now += 100
        rig.service.tick()

    rig = scenario(store, body)
    assert rig.fields["leg-2"]["callback_status"] == "failed", "busy at once: marked at its end"
    assert seen["left"] == {}
    assert rig.service.acd.waiting["support"] == []
    assert isinstance(rig.service.cti, NamedEvents)
    assert rig.service.cti.names.count("call.callback-failed") == 1
    assert rig.service.cti.names.count("call.offered") == 2, "no third try"


def test_a_restart_between_tries_keeps_the_count_and_the_interval(store: Store) -> None:
    placed = FakeWorker()

    async def first() -> None:
        rig = retry_rig(store, placed)
        await requested(rig, store)
        rig.service.login("1003")
        one_try(rig, placed, "leg-1", answered=False)
        await rig.service.stop()

    async def second() -> tuple[int, int, int]:
        rig = retry_rig(store, placed)
        await rig.service.start(store)
        (entry,) = rig.service.acd.waiting["support"]
        rig.service.tick()
        early = offers(placed)
        rig.clock.now += 30  # a new clock at 1000 s: the try failed at 1020, due at 1030
        rig.service.tick()
        await rig.service.stop()
        return entry.tries, early, offers(placed)

    asyncio.run(first())
    assert asyncio.run(second()) == (1, 1, 2)


def test_a_try_under_way_at_a_restart_is_not_made_again(store: Store) -> None:
    placed = FakeWorker()

    async def first() -> None:
        rig = retry_rig(store, placed)
        await requested(rig, store)
        rig.service.login("1003")
        rig.event("agent-answered", "c1", agent="1003")
        await rig.service.stop()

    async def restarted() -> list[int]:
        rig = retry_rig(store, placed)
        await rig.service.start(store)
        await rig.service.stop()
        return [w.tries for w in rig.service.acd.waiting["support"]]

    asyncio.run(first())
    assert asyncio.run(restarted()) == [1], "the first try counted: one retry left"


def test_a_try_is_under_way_from_its_agent_to_its_caller_only(store: Store) -> None:
    seen: list[tuple[bool, bool, bool]] = []

    async def body(rig: Rig, placed: FakeWorker) -> None:
        def under_way() -> tuple[bool, bool, bool]:
            service = rig.service
            return (service.calling_back("1003", "2001"), service.calling_back("1003", "2002"),
                    service.calling_back("1004", "2001"))  # fmt: skip

        rig.service.login("1003")
        seen.append(under_way())
        rig.event("agent-answered", "c1", agent="1003")
        seen.append(under_way())
        worker_event(rig, placed, "callback-answered", agent="1003", sip_call_id="leg-1")
        worker_event(rig, placed, "agent-ended", agent="1003", answered=True)
        seen.append(under_way())

    scenario(store, body)
    assert seen == [(False, False, False), (True, False, False), (False, False, False)]
