"""A caller whose media worker has no slot for the agent's leg: the agent is not paused,
the caller behind it is offered the agent, and the first caller is offered again later."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.store import Store
from tests.unit.contact.test_service import Rig, run


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store", 16)
    yield opened
    opened.close()


def test_a_full_worker_frees_the_agent_for_the_next_caller(store: Store) -> None:
    seen: dict[str, Any] = {}

    def scenario(rig: Rig) -> None:
        rig.service.login("1003")
        rig.caller("c1", "2001")
        rig.caller("c2", "2002")
        rig.event("agent-ended", "c1", agent="1003", code=503, reason="worker-full",
                  answered=False)  # fmt: skip
        seen["agent"] = rig.service.acd.agents["1003"].state
        seen["offers"] = [c["id"] for c in rig.worker.sent if c["cmd"] == "queue-offer"]
        rig.event("agent-answered", "c2", agent="1003")
        rig.event("agent-ended", "c2", agent="1003", answered=True)
        rig.clock.now += 2
        rig.service.tick()
        seen["before"] = [c["id"] for c in rig.worker.sent if c["cmd"] == "queue-offer"]
        rig.clock.now += 3
        rig.service.tick()

    rig = run(store, scenario)
    assert seen["agent"] == "ringing", "not paused no-answer: rung for the next caller"
    assert seen["offers"] == ["c1", "c2"]
    assert seen["before"] == ["c1", "c2"], "c1 not offered again within 5 s"
    assert [c["id"] for c in rig.worker.sent if c["cmd"] == "queue-offer"] == ["c1", "c2", "c1"]
