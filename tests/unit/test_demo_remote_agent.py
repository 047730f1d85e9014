"""The demo's remote agent: branch B's Front desk is an agent of branch A's queue, its
agent codes go to branch A, and the manifest says so."""

from __future__ import annotations

from pathlib import Path

from appliance.demo.plan import plan_services
from appliance.settings import ApplianceSettings


def test_branch_bs_front_desk_is_a_remote_agent_of_branch_as_queue(tmp_path: Path) -> None:
    plans = {plan.name: plan for plan in plan_services(tmp_path)}
    branch, branch_b = plans["branch"], plans["branch-b"]
    a = ApplianceSettings.model_validate(branch.config)
    b = ApplianceSettings.model_validate(branch_b.config)
    support = a.contact.queues["support"]
    assert [(m.extension, m.remote) for m in support.agents] == [
        ("1001", False), ("1003", False), ("3001", True)]  # fmt: skip
    assert "3001" in {e.number for e in b.sip.extensions}
    assert b.contact.agent_codes is not None
    assert b.contact.agent_codes.queue_site == a.site_id
    assert b.contact.queues == {}
    assert branch.extras["contact"]["remote_agents"] == {"3001": "branch-b"}
    assert branch_b.extras["contact"]["queue_site"] == "branch"
