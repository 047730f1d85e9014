"""What features register on the appliance's side of the sync link."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from appliance.sim.sync import SimStatusPublisher
from appliance.sync.features import CommandHandler, OutboxStream, SyncFeatures
from drivers.sync.protocol import Message, SimStatus, SmsBatch, Snapshot, Update
from drivers.sync.session import BatchStream

pytestmark = pytest.mark.unit


@dataclass
class Sims:
    """The part of the SIM service the publisher reads."""

    revision: int = 0
    switches: list[dict[str, Any]] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [{"iccid": "8949", "revision": self.revision}]


class Dnc:
    name = "dnc"

    def version(self) -> int:
        return 7

    async def receive(self, message: Snapshot | Update) -> list[Message]:
        return []


async def apply(_command_id: str, _kind: str, _args: dict[str, Any]) -> tuple[bool, str]:
    return True, "done"


def test_registered_streams_topics_and_commands_are_announced_and_found() -> None:
    features = SyncFeatures()
    features.add_stream(OutboxStream(BatchStream("sms", SmsBatch)))
    features.add_topic(Dnc())
    handler = CommandHandler(lambda kind: kind.startswith("sim-"), apply)
    features.add_commands(handler, "sim")
    assert features.capabilities == ["sms", "dnc", "sim"]
    assert features.command_handler("sim-block") is handler
    assert features.command_handler("reboot") is None
    assert features.topic("dnc") is features.topics[0]
    assert features.topic("routing") is None


def test_sim_status_goes_on_change_at_most_each_second_and_every_interval() -> None:
    sims = Sims()
    publisher = SimStatusPublisher(sims, interval_s=60.0)  # type: ignore[arg-type]
    assert publisher.due(100.0) == [SimStatus(sims.records(), [])]
    assert publisher.due(100.5) == [], "nothing changed"
    sims.revision = 1
    assert publisher.due(100.5) == [], "changed, but within a second of the last"
    assert publisher.due(101.1) == [SimStatus(sims.records(), [])]
    assert publisher.due(160.0) == []
    assert len(publisher.due(161.2)) == 1, "the interval passed"
    publisher.reset()
    assert len(publisher.due(161.3)) == 1, "a new session hears the state at once"
