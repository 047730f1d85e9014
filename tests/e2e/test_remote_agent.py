"""A remote agent in the demo: Front desk (3001), registered at branch B, is an agent of
branch A's support queue (700), logs in with branch B's feature code and answers a call
to the queue, with audio both ways."""

from __future__ import annotations

import array
from pathlib import Path
from typing import Any

from tests.e2e.demo import Demo, eventually, hang_up, registered
from tests.integration.pbx.audio import dominant, loudness, read_channels
from tests.integration.pbx.harness import Phone

TONES = [425.0, 450.0, 1000.0, 1400.0]


def front_desk(demo: Demo) -> dict[str, Any]:
    """Branch A's view of its remote agent (the manifest names it)."""
    (number,) = demo.services["branch"]["contact"]["remote_agents"]
    with demo.api("branch") as branch:
        queues = branch.get("/api/v1/contact/queues").json()["queues"]
    support = next(q for q in queues if q["name"] == "support")
    found: dict[str, Any] = next(a for a in support["agents"] if a["agent"] == number)
    return found


def recorded_s(phone: Phone) -> float:
    return max(0, phone.record.stat().st_size - 44) / 16000 if phone.record.exists() else 0.0


def heard_after(phone: Phone, mark_s: float) -> float:
    """The tone that dominates what ``phone`` heard from ``mark_s`` on."""
    rate, (samples,) = read_channels(phone.record)
    tail = array.array("h", samples[int(mark_s * rate) :])
    assert loudness(tail) > 100, f"{phone.number} heard silence"
    return dominant(tail, rate, TONES)


def test_a_call_to_branch_as_queue_is_answered_by_an_agent_at_branch_b(
    demo: Demo, tmp_path: Path
) -> None:
    assert demo.services["branch"]["contact"]["remote_agents"] == {"3001": "branch-b"}
    assert demo.services["branch-b"]["contact"]["queue_site"] == "branch"
    specs = (("branch-b", "3001", 1000), ("branch", "1002", 450))
    with registered(demo, tmp_path, *specs) as (desk, sales):
        eventually(lambda: front_desk(demo)["registered"], 20, "branch A to see 3001 registered")
        desk.send("call", to="*71")  # branch B's code, run by branch A
        desk.state("CONFIRMED", timeout=15)
        desk.state("DISCONNECTED", timeout=15)
        assert front_desk(demo)["state"] == "available"
        sales.send("call", to="700")
        sales.state("CONFIRMED")
        incoming = desk.answer(timeout=20)
        assert "1002" in incoming["remote"]
        answered = (recorded_s(sales) + 1.0, recorded_s(desk) + 1.0)
        eventually(lambda: front_desk(demo)["state"] == "on-call", 10, "3001 on the call")
        eventually(lambda: recorded_s(sales) > answered[0] + 2.5, 20, "the caller to record")
        eventually(lambda: recorded_s(desk) > answered[1] + 2.5, 20, "the agent to record")
        hang_up(sales, desk)
    assert heard_after(sales, answered[0]) == 1000.0, "the caller did not hear the agent"
    assert heard_after(desk, answered[1]) == 450.0, "the agent did not hear the caller"
    with demo.api("branch") as branch:
        branch.post("/api/v1/contact/agents/3001/logout")
