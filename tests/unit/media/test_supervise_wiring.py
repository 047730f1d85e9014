"""The worker's supervisor legs on a bridge of fake ports: which port transmits to which."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from drivers.media.protocol import Event, ProtocolError, SuperviseCommand, parse_command
from drivers.media.supervise import Session, SupervisorLegs
from drivers.media.worker import Call, Leg, Worker


class Port:
    """A conference port that records the transmissions started to and from it."""

    def __init__(self, name: str, heard: set[tuple[str, str]]) -> None:
        self.name = name
        self._heard = heard

    def startTransmit(self, sink: Port) -> None:
        self._heard.add((self.name, sink.name))

    def stopTransmit(self, sink: Port) -> None:
        self._heard.discard((self.name, sink.name))


class FakeCall:
    def __init__(self) -> None:
        self.hung_up = False

    def hangup(self, prm: Any) -> None:
        self.hung_up = True


class FakeQueues:
    """The part of ``QueueLegs`` or ``CallbackLegs`` supervision reads: bridged callers
    and agents (none without legs)."""

    def __init__(self, caller: Leg | None = None, agent: Leg | None = None) -> None:
        self.callers = {"c1": caller} if caller else {}
        self.agents = {"c1": agent} if agent else {}
        self.bridged = {"c1"} if caller and agent else set()


class Bridge:
    """Caller and agent bridged for the Call-ID ``c1``, agent 1003, and one supervisor; the
    call is in the worker's second bridges (as a callback is, after the queue's)."""

    def __init__(self) -> None:
        self.heard: set[tuple[str, str]] = set()
        self.events: list[Event] = []
        agent = self.leg("agent", "queue-agent", tag="1003")
        agent.answered = True
        queues = FakeQueues(self.leg("caller", "queue"), agent)
        self.legs = SupervisorLegs(cast(Worker, None), [FakeQueues(), queues], self.emit)
        self.supervisor = self.leg("supervisor", "supervise", tag="sv-1")
        self.legs.sessions["sv-1"] = Session("sv-1", self.supervisor, "c1", "1003")

    def leg(self, name: str, service: str, tag: str | None = None) -> Leg:
        leg = Leg(cast(Call, FakeCall()), service, tag=tag)
        leg.audio = cast(Any, Port(name, self.heard))
        return leg

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def command(self, name: str, **cmd: Any) -> None:
        """Apply the line ``{"cmd": name, "id": "sv-1", **cmd}`` as the worker parses it."""
        parsed = parse_command(json.dumps({"cmd": name, "id": "sv-1", **cmd}))
        assert isinstance(parsed, SuperviseCommand)
        self.legs.command(parsed)


def test_each_mode_connects_the_supervisors_port_as_documented() -> None:
    bridge = Bridge()
    assert bridge.legs.call_of("1003") is None, "the call already has its supervisor"
    bridge.command("supervise-join", mode="whisper", beep="none")
    assert bridge.heard == {("caller", "supervisor"), ("agent", "supervisor"),
                            ("supervisor", "agent")}  # fmt: skip
    bridge.command("supervise-mode", mode="barge")
    assert ("supervisor", "caller") in bridge.heard
    bridge.command("supervise-mode", mode="monitor")
    assert bridge.heard == {("caller", "supervisor"), ("agent", "supervisor")}
    with pytest.raises(ValueError, match="spy"):
        bridge.command("supervise-mode", mode="spy")
    assert bridge.heard == {("caller", "supervisor"), ("agent", "supervisor")}


def test_the_supervisor_leg_ends_with_the_agents_call_and_only_then() -> None:
    bridge = Bridge()
    bridge.command("supervise-join", mode="monitor", beep="none")
    bridge.legs.call_ended("other-call")
    assert not cast(FakeCall, bridge.supervisor.call).hung_up
    bridge.legs.call_ended("c1")
    assert cast(FakeCall, bridge.supervisor.call).hung_up


def test_a_mode_switch_before_the_join_changes_nothing() -> None:
    bridge = Bridge()
    bridge.command("supervise-mode", mode="barge")
    assert bridge.heard == set()
    bridge.command("supervise-mode", mode="barge", id="unknown")
    with pytest.raises(ProtocolError, match="unknown command 'supervise-spy'"):
        bridge.command("supervise-spy")
