"""The contact service with a fake media worker, a fake clock and a real LMDB store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.contact.cti import CtiEvent, CtiStream
from appliance.contact.service import ContactService
from appliance.contact.settings import ContactSettings, QueueSettings
from appliance.store import Store
from appliance.store.state import StateStore
from drivers.media.protocol import Command, Prompt
from tests.media_wire import ev, wire

SETTINGS = ContactSettings.model_validate({"queues": {
    "support": {"number": "700", "agents": ["1003", "1004"], "ring_timeout_s": 10,
                "wrapup_s": 2, "max_wait_s": 60, "overflow": "1009", "hold_prompt": "music"},
}})  # fmt: skip


class FakeWorker:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, command: Command) -> bool:
        self.sent.append(wire(command))
        return True

    def commands(self, call_id: str) -> list[str]:
        return [c["cmd"] for c in self.sent if c.get("id") == call_id]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    def __init__(self, store: Store) -> None:
        self.clock = Clock()
        self.fields: dict[str, dict[str, str]] = {}
        self.worker = FakeWorker()
        prompts = {"music": Prompt(tone_hz=425)}
        self.service = ContactService(SETTINGS, prompts, self.annotate, self.clock)
        self.store = store

    def annotate(self, call_id: str, fields: dict[str, str]) -> None:
        self.fields.setdefault(call_id, {}).update(fields)

    def event(self, state: str, call_id: str, **extra: Any) -> None:
        self.service.on_event(
            self.worker, ev({"ev": "queue", "state": state, "id": call_id, **extra})
        )

    def caller(self, call_id: str, number: str) -> None:
        self.event("start", call_id, queue="support", caller=number)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


def run(store: Store, scenario: Any) -> Rig:
    async def main() -> Rig:
        rig = Rig(store)
        await rig.service.start(store)
        scenario(rig)
        await rig.service.stop()
        return rig

    return asyncio.run(main())


def test_a_caller_hears_the_queue_music_and_is_offered_to_a_logged_in_agent(store: Store) -> None:
    def scenario(rig: Rig) -> None:
        rig.caller("c1", "2001")
        rig.service.login("1003")

    rig = run(store, scenario)
    assert rig.worker.commands("c1") == ["queue-hold", "queue-offer"]
    assert rig.worker.sent[0]["prompt"]["tone_hz"] == 425
    assert rig.worker.sent[1]["agent"] == "1003"
    assert rig.fields["c1"]["queue_outcome"] == "abandoned"
    assert rig.fields["c1"]["queue_position"] == "1"


def test_answer_and_hang_up_give_queue_fields_and_wrap_up(store: Store) -> None:
    states: list[str] = []

    def scenario(rig: Rig) -> None:
        rig.service.login("1003")
        rig.caller("c1", "2001")
        rig.clock.now += 4
        rig.event("agent-answered", "c1", agent="1003")
        states.append(rig.service.acd.agents["1003"].state)
        rig.event("agent-ended", "c1", agent="1003", answered=True)
        states.append(rig.service.acd.agents["1003"].state)
        rig.clock.now += 2
        rig.service.tick()
        states.append(rig.service.acd.agents["1003"].state)

    rig = run(store, scenario)
    assert states == ["on-call", "wrap-up", "available"]
    assert rig.fields["c1"] == {**rig.fields["c1"], "queue_outcome": "answered",
                                "queue_agent": "1003", "queue_wait_s": "4.0",
                                "queue_sl_met": "true"}  # fmt: skip


def test_ring_timeout_cancels_the_offer_and_the_next_agent_is_rung(store: Store) -> None:
    def scenario(rig: Rig) -> None:
        rig.service.login("1003")
        rig.clock.now += 1
        rig.service.login("1004")
        rig.caller("c1", "2001")
        rig.clock.now += 10
        rig.service.tick()
        rig.event("agent-ended", "c1", agent="1003", code=487, answered=False)

    rig = run(store, scenario)
    offers = [c["agent"] for c in rig.worker.sent if c["cmd"] == "queue-offer"]
    assert offers == ["1003", "1004"]
    assert "queue-cancel" in rig.worker.commands("c1")
    agent = rig.service.acd.agents["1003"]
    assert (agent.state, agent.reason) == ("paused", "no-answer")


def test_a_caller_past_the_maximum_wait_goes_to_the_overflow_target(store: Store) -> None:
    def scenario(rig: Rig) -> None:
        rig.caller("c1", "2001")
        rig.clock.now += 60
        rig.service.tick()

    rig = run(store, scenario)
    transfer = rig.worker.sent[-1]
    assert (transfer["cmd"], transfer["to"]) == ("queue-transfer", "1009")
    assert rig.fields["c1"]["queue_outcome"] == "overflowed"
    assert rig.service.snapshot()["queues"][0]["waiting"] == []


def test_a_lost_worker_frees_the_agent_it_was_ringing(store: Store) -> None:
    def scenario(rig: Rig) -> None:
        rig.service.login("1003")
        rig.caller("c1", "2001")
        rig.service.worker_lost(rig.worker)

    rig = run(store, scenario)
    assert rig.fields["c1"]["queue_outcome"] == "interrupted"
    assert rig.service.acd.agents["1003"].state == "available"


def test_agent_states_are_read_back_from_the_store(store: Store) -> None:
    run(store, lambda rig: (rig.service.login("1003"), rig.service.pause("1003", "lunch")))
    rig = run(store, lambda rig: None)
    agent = rig.service.acd.agents["1003"]
    assert (agent.state, agent.reason) == ("paused", "lunch")
    assert rig.service.acd.agents["1004"].state == "logged-out"


def test_an_agent_whose_phone_is_gone_gets_no_offer_until_it_registers(store: Store) -> None:
    seen: list[bool] = []

    def scenario(rig: Rig) -> None:
        rig.service.login("1003")
        rig.service.registrations({"1004"})
        rig.caller("c1", "2001")
        seen.append(rig.service.acd.agents["1003"].registered)
        rig.service.registrations({"1003", "1004"})

    rig = run(store, scenario)
    assert seen == [False]
    assert rig.worker.commands("c1") == ["queue-hold", "queue-offer"]


def test_waiting_callers_hear_their_position_at_the_queue_interval(store: Store) -> None:
    spoken: list[tuple[str, str]] = []

    async def speak(text: str, language: str) -> Path:
        spoken.append((text, language))
        return Path("/tmp/position.wav")

    async def main() -> FakeWorker:
        rig = Rig(store)
        queue = {"number": "700", "agents": ["1003"], "announce_every_s": 30}
        settings = ContactSettings.model_validate({"queues": {"support": queue}})
        rig.service = ContactService(settings, {}, rig.annotate, rig.clock, speak)
        await rig.service.start(store)
        rig.caller("c1", "2001")
        rig.caller("c2", "2002")
        rig.clock.now += 30
        rig.service.tick()
        for _ in range(5):
            await asyncio.sleep(0)
        await rig.service.stop()
        return rig.worker

    worker = asyncio.run(main())
    assert sorted(spoken) == [("You are number 1 in the queue.", "en"),
                              ("You are number 2 in the queue.", "en")]  # fmt: skip
    announced = [c for c in worker.sent if c["cmd"] == "queue-announce"]
    assert [c["prompt"]["file"] for c in announced] == ["/tmp/position.wav"] * 2


def test_an_unknown_queue_is_hung_up(store: Store) -> None:
    rig = run(store, lambda rig: rig.event("start", "c9", queue="nope", caller="2001"))
    assert rig.worker.commands("c9") == ["queue-hangup"]
    assert rig.fields == {}


def test_an_ivr_flow_hands_its_variables_and_priority_to_the_queue(store: Store) -> None:
    def scenario(rig: Rig) -> None:
        rig.service.expect("queue-support", "2002", {"priority": "5", "order": "T-17"})
        rig.service.expect("1003", "2003", {"priority": "9"})
        rig.caller("c1", "2001")
        rig.caller("c2", "2002")
        rig.caller("c3", "2003")

    rig = run(store, scenario)
    line = rig.service.acd.waiting["support"]
    assert [(w.caller, w.priority) for w in line] == [("2002", 5), ("2001", 0), ("2003", 0)]
    assert line[0].variables == {"priority": "5", "order": "T-17"}
    assert rig.fields["c2"]["queue_priority"] == "5"


def test_live_stats_count_answered_within_the_level_and_abandoned_callers(store: Store) -> None:
    parts: list[dict[str, Any]] = []

    def scenario(rig: Rig) -> None:
        rig.service.login("1003")
        rig.caller("c1", "2001")
        rig.caller("c2", "2002")
        parts.append(rig.service.live_stats())
        rig.clock.now += 4
        rig.event("agent-answered", "c1", agent="1003")
        rig.clock.now += 1
        rig.event("ended", "c2")
        parts.append(rig.service.live_stats())

    rig = run(store, scenario)
    (waiting,), (after,) = (p["queues"] for p in parts)
    assert (waiting["waiting"], waiting["oldest_entered"]) == (2, 1000.0)
    assert waiting["agents"]["ringing"] == 1
    assert (after["waiting"], after["answered"], after["abandoned"]) == (0, 1, 1)
    assert after["service_level_percent"] == 50.0
    assert after["agents"]["on-call"] == 1
    assert rig.fields["c2"]["queue_outcome"] == "abandoned"


def strategy_rig(store: Store, **queue: Any) -> Rig:
    rig = Rig(store)
    settings = {"number": "700", "agents": ["1003", "1004"], "ring_timeout_s": 10, **queue}
    contact = ContactSettings.model_validate({"queues": {"support": settings}})
    rig.service = ContactService(contact, {}, rig.annotate, rig.clock, rig.service._speak)
    return rig


def test_ring_all_rings_both_agents_and_the_one_not_answering_is_free_at_once(
    store: Store,
) -> None:
    states: list[tuple[str, str]] = []

    async def main() -> Rig:
        rig = strategy_rig(store, strategy="ring-all")
        await rig.service.start(store)
        rig.service.login("1003")
        rig.service.login("1004")
        rig.caller("c1", "2001")
        rig.event("agent-answered", "c1", agent="1004")
        agents = rig.service.acd.agents
        states.append((agents["1003"].state, agents["1004"].state))
        rig.event("agent-ended", "c1", agent="1003", code=487, answered=False)
        states.append((agents["1003"].state, agents["1004"].state))
        await rig.service.stop()
        return rig

    rig = asyncio.run(main())
    offers = [c["agent"] for c in rig.worker.sent if c["cmd"] == "queue-offer"]
    assert offers == ["1003", "1004"]
    assert states == [("ringing", "on-call"), ("available", "on-call")]
    assert rig.fields["c1"]["queue_agent"] == "1004"


def test_ring_timeout_cancels_each_agent_rung_and_pauses_them(store: Store) -> None:
    async def main() -> Rig:
        rig = strategy_rig(store, strategy="ring-all")
        await rig.service.start(store)
        rig.service.login("1003")
        rig.service.login("1004")
        rig.caller("c1", "2001")
        rig.clock.now += 10
        rig.service.tick()
        for agent in ("1003", "1004"):
            rig.event("agent-ended", "c1", agent=agent, code=487, answered=False)
        await rig.service.stop()
        return rig

    rig = asyncio.run(main())
    cancels = [c.get("agent") for c in rig.worker.sent if c["cmd"] == "queue-cancel"]
    assert cancels == ["1003", "1004"]
    assert {a.reason for a in rig.service.acd.agents.values()} == {"no-answer"}


def test_round_robin_remembers_its_turn_across_a_restart(store: Store) -> None:
    async def main() -> list[str]:
        rig = strategy_rig(store, strategy="round-robin", agents=["1003", "1004", "1005"])
        await rig.service.start(store)
        for number in ("1003", "1004", "1005"):
            rig.service.login(number)
        rig.caller("c1", "2001")
        await rig.service.stop()
        return [c["agent"] for c in rig.worker.sent if c["cmd"] == "queue-offer"]

    assert asyncio.run(main()) == ["1003"]
    assert asyncio.run(main()) == ["1004"], "after 1003, not from the top again"


def test_an_ivr_flow_asks_for_skills_and_a_malformed_ask_falls_back_to_the_queue_s(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    agents = [{"extension": "1003", "skills": {"french": 3}},
              {"extension": "1004", "skills": {"billing": 3}}]  # fmt: skip

    async def main() -> Rig:
        rig = strategy_rig(store, strategy="skills", agents=agents, skills={"billing": 1})
        await rig.service.start(store)
        rig.service.expect("queue-support", "2001", {"skills": "french:2"})
        rig.service.expect("queue-support", "2002", {"skills": "french=2"})
        rig.caller("c1", "2001")
        rig.caller("c2", "2002")
        rig.service.login("1003")
        rig.service.login("1004")
        await rig.service.stop()
        return rig

    rig = asyncio.run(main())
    offers = {c["id"]: c["agent"] for c in rig.worker.sent if c["cmd"] == "queue-offer"}
    assert offers == {"c1": "1003", "c2": "1004"}
    assert "queue-skills-invalid" in caplog.text


def test_the_announcement_speaks_the_expected_wait(store: Store) -> None:
    spoken: list[str] = []

    async def speak(text: str, language: str) -> Path:
        spoken.append(text)
        return Path("/tmp/wait.wav")

    async def main() -> None:
        rig = strategy_rig(store, announce_every_s=30, handle_time_s=120,
                           announcement="Number {position}, about {wait_minutes}.")  # fmt: skip
        rig.service = ContactService(rig.service.settings, {}, rig.annotate, rig.clock, speak)
        await rig.service.start(store)
        rig.service.login("1003")
        rig.service.pause("1003", "lunch")
        rig.caller("c1", "2001")
        rig.caller("c2", "2002")
        rig.clock.now += 30
        rig.service.tick()
        for _ in range(5):
            await asyncio.sleep(0)
        await rig.service.stop()

    asyncio.run(main())
    assert sorted(spoken) == ["Number 1, about 2 minutes.", "Number 2, about 4 minutes."]


class NamedEvents(CtiStream):
    """The CTI stream, noting each event's name."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def publish(self, event: str, **data: Any) -> CtiEvent:
        self.names.append(event)
        return super().publish(event, **data)


def callback_rig(store: Store, spoken: list[str], placed: FakeWorker) -> Rig:
    async def speak(text: str, language: str) -> Path:
        spoken.append(text)
        return Path("/tmp/callback.wav")

    rig = Rig(store)
    queue = {"number": "700", "agents": ["1003", "1004"], "strategy": "ring-all",
             "callback_after_s": 20, "max_wait_s": 60}  # fmt: skip
    contact = ContactSettings.model_validate({"queues": {"support": queue}})
    rig.service = ContactService(contact, {}, rig.annotate, rig.clock, speak, lambda: placed)
    return rig


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_caller_who_presses_1_hangs_up_keeps_its_place_and_the_agent_is_rung_first(
    store: Store,
) -> None:
    spoken: list[str] = []
    placed = FakeWorker()
    seen: dict[str, Any] = {}

    async def main() -> Rig:
        rig = callback_rig(store, spoken, placed)
        await rig.service.start(store)
        rig.service.cti = cti = NamedEvents()
        rig.caller("c1", "2001")
        rig.event("digit", "c1", digit="1")
        seen["early press"] = rig.worker.commands("c1")
        rig.clock.now += 20
        rig.service.tick()
        await settle()
        rig.event("digit", "c1", digit="1")
        rig.event("ended", "c1")
        seen["position"] = rig.service.acd.position("c1")
        rig.clock.now += 100
        rig.service.tick()
        seen["still waiting"] = rig.service.acd.position("c1")
        seen["next wake"] = rig.service._next_deadline()
        rig.service.login("1003")
        rig.service.login("1004")
        rig.event("agent-answered", "c1", agent="1003")
        rig.service.on_event(placed, ev({"ev": "queue", "state": "callback-answered", "id": "c1",
                                      "agent": "1003"}))  # fmt: skip
        seen["agent"] = rig.service.acd.agents["1003"].state
        rig.service.on_event(placed, ev({"ev": "queue", "state": "agent-ended", "id": "c1",
                                      "agent": "1003", "answered": True}))  # fmt: skip
        seen["after"] = rig.service.acd.agents["1003"].state
        rig.service.on_event(placed, ev({"ev": "queue", "state": "callback-ended", "id": "c1",
                                      "agent": "1003", "answered": True}))  # fmt: skip
        seen["workers"] = dict(rig.service._workers)
        seen["events"] = cti.names
        await rig.service.stop()
        return rig

    rig = asyncio.run(main())
    assert seen["early press"] == ["queue-hold"], "no offer yet: 1 means nothing"
    assert spoken == [QueueSettings.model_fields["callback_release_prompt"].default,
                      QueueSettings.model_fields["callback_prompt"].default]  # fmt: skip
    assert rig.worker.commands("c1") == ["queue-hold", "queue-announce", "queue-hangup"]
    assert (seen["position"], seen["still waiting"]) == (1, 1), "kept past max_wait_s"
    assert seen["next wake"] == float("inf"), "no deadline for a caller who cannot expire"
    assert rig.fields["c1"]["queue_outcome"] == "callback"
    assert rig.fields["c1"]["queue_callback_offered"] == "true"
    (callback,) = placed.sent
    expected = {"cmd": "queue-callback", "id": "c1", "agent": "1003", "caller": "2001",
                "display": "callback support: 2001",
                "release": {"file": "/tmp/callback.wav", "tone_hz": 0, "on_ms": 1000,
                            "off_ms": 0, "seconds": 4.0}, "ring_s": 30.0}  # fmt: skip
    assert callback == expected, "one agent, even in a ring-all queue"
    assert (seen["agent"], seen["after"]) == ("on-call", "wrap-up")
    assert rig.fields["c1"]["queue_outcome"] == "callback", "the closed CDR is left alone"
    names = [n for n in seen["events"] if n.startswith("call.")]
    assert names == ["call.queued", "call.callback-offered", "call.announced",
                     "call.callback-requested", "call.offered", "call.answered",
                     "call.callback-answered", "call.ended", "call.callback-ended"]  # fmt: skip
    assert seen["workers"] == {}, "nothing kept once the callback is done"


def test_a_callback_whose_worker_is_lost_is_rung_again_from_another(store: Store) -> None:
    placed = FakeWorker()

    async def main() -> Rig:
        rig = callback_rig(store, [], placed)
        await rig.service.start(store)
        rig.caller("c1", "2001")
        rig.clock.now += 20
        rig.service.tick()
        await settle()
        rig.event("digit", "c1", digit="1")
        rig.service.login("1003")
        rig.service.worker_lost(placed)
        await rig.service.stop()
        return rig

    rig = asyncio.run(main())
    assert [c["agent"] for c in placed.sent] == ["1003", "1003"]
    assert rig.service.acd.agents["1003"].state == "ringing"


def test_callers_waiting_for_a_callback_keep_their_place_across_a_restart(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    placed = FakeWorker()

    async def first() -> None:
        rig = callback_rig(store, [], placed)
        await rig.service.start(store)
        rig.caller("c0", "2000")
        rig.caller("c1", "2001")
        rig.clock.now += 20
        rig.service.tick()
        await settle()
        rig.event("digit", "c1", digit="1")
        await rig.service.stop()

    async def second() -> list[Any]:
        rig = callback_rig(store, [], placed)
        await rig.service.start(store)
        line = [(w.call_id, w.caller, w.callback) for w in rig.service.acd.waiting["support"]]
        rig.service.login("1003")
        rig.event("agent-answered", "c1", agent="1003")
        await rig.service.stop()
        return line

    async def third() -> list[str]:
        rig = callback_rig(store, [], placed)
        await rig.service.start(store)
        await rig.service.stop()
        return [w.call_id for w in rig.service.acd.waiting["support"]]

    asyncio.run(first())
    StateStore(store, "contact-callbacks").put("c9", {"queue": "support", "caller": None})
    assert asyncio.run(second()) == [("c1", "2001", True)], "c0 was a live call, gone"
    assert placed.sent[-1]["cmd"] == "queue-callback"
    assert "callback-unreadable" in caplog.text
    StateStore(store, "contact-callbacks").delete("c9")
    assert asyncio.run(third()) == [], "answered: not restored again"
