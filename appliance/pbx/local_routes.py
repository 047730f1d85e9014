"""Calls between local phones, decided inside Kamailio without asking the routing chain.

Theory of operation: a call from an authenticated phone to a local extension or ring
group gets the same decision from the dial plan whoever the caller is, except for the
recording policy, where the caller's ``recording_by_extension`` comes first. So the
decision is rendered once per number as the route server's JSON answer, and the
callers with a policy of their own as a second table; Kamailio's ``route[DECIDE]``
reads both (htables ``local`` and ``recpol``) and asks the appliance only about other
numbers and other sources (trunks, other sites, media workers). The tables live in
Kamailio's SQLite file and are reloaded when the dial plan changes
(``BranchExchange.apply``).

Compliance and every other decider stay in force: the tables are empty unless every
decider in the chain declares ``keeps_local_calls`` (``appliance/pbx/deciders.py``),
and no number that leaves the company (trunk, GSM, another site) is ever in them.
"""

from __future__ import annotations

import json
from dataclasses import replace

from appliance.pbx.deciders import DecisionChain
from appliance.pbx.dialplan import DialPlan
from drivers.sip.kamailio_config import LocalRoutes

LOCAL_ACTIONS = ("extension", "group")


def local_routes(plan: DialPlan, chain: DecisionChain, recorded: bool) -> LocalRoutes:
    """The answers for every local number, or none when a decider may change them."""
    if not chain.keeps_local_calls:
        return LocalRoutes()
    answers = []
    for number in sorted(plan.extensions | set(plan.groups)):
        decision = plan.decide("", number)
        if decision.action not in LOCAL_ACTIONS:
            continue
        policy = plan.recording("", number) if recorded else "never"
        wire = replace(decision, recording=policy).wire()
        answers.append((number, json.dumps(wire, separators=(",", ":"))))
    callers = plan.settings.recording_by_extension if recorded else {}
    return LocalRoutes(tuple(answers), tuple(sorted(callers.items())))
