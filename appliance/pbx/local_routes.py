"""Calls decided inside Kamailio without asking the routing chain.

Theory of operation: a call from an authenticated phone to a local extension or ring
group gets the same decision from the dial plan whoever the caller is, except for the
recording policy, where the caller's ``recording_by_extension`` comes first. So the
decision is rendered once per number as the route server's JSON answer, and the
callers with a policy of their own as a second table; Kamailio's ``route[DECIDE]``
reads both (htables ``local`` and ``recpol``).

Break-outs and DIDs follow the same idea (htables ``trunk`` and ``callers``): a call
from a trunk to a DID gets its inbound route's answer whoever calls (``in:<did>``; a
trunk's name as request user means the DID is in To, ``via:<trunk>``). A phone's call
matching a SIP trunk's outbound route gets that route's answer with the number
rewritten in Kamailio (``re:<i>`` the pattern as a regex, ``out:<i>`` the answer with
``strip``, ``prepend``, ``host``, the route's ``cos`` rank and ``rec_fixed``); the
caller must be in ``callers`` with a class of service that reaches the route, and the
caller's, then the number's ``recpol`` entry comes before the default policy unless the
route fixes it. Anything else (a class of service too low, a GSM trunk group, the
routing table's rules, a caller or number a decider asks about) goes to the chain.
The tables live in Kamailio's SQLite file and are reloaded when the dial plan changes
(``BranchExchange.apply``).

Compliance and every other decider stay in force: local answers are rendered only while
every decider declares ``keeps_local_calls``, trunk answers only while every decider
declares ``keeps_trunk_calls``, and never for the callers and numbers a decider lists
in ``asked_callers`` / ``asked_numbers`` (``appliance/pbx/deciders.py``).
"""

from __future__ import annotations

import json
from dataclasses import replace

from appliance.pbx.deciders import DecisionChain
from appliance.pbx.dialplan import COS_RANK, Decision, DialPlan
from drivers.sip.kamailio_config import LocalRoutes

LOCAL_ACTIONS = ("extension", "group")
Rows = tuple[tuple[str, str], ...]


def local_routes(plan: DialPlan, chain: DecisionChain, recorded: bool) -> LocalRoutes:
    """The answers Kamailio may give itself, or none where a decider may change them."""
    local, trunk = chain.keeps_local_calls, chain.keeps_trunk_calls
    if not (local or trunk):
        return LocalRoutes()
    callers = plan.settings.recording_by_extension if recorded else {}
    return LocalRoutes(
        _local_answers(plan, recorded) if local else (),
        tuple(sorted(callers.items())),
        _inbound(plan, recorded) + _outbound(plan, chain, recorded) if trunk else (),
        _callers(plan, chain) if trunk else (),
    )


def _wire(decision: Decision, **extra: object) -> str:
    return json.dumps(decision.wire() | extra, separators=(",", ":"))


def _local_answers(plan: DialPlan, recorded: bool) -> Rows:
    answers = []
    for number in sorted(plan.extensions | set(plan.groups)):
        decision = plan.decide("", number)
        if decision.action not in LOCAL_ACTIONS:
            continue
        policy = plan.recording("", number) if recorded else "never"
        answers.append((number, _wire(replace(decision, recording=policy))))
    return tuple(answers)


def _inbound(plan: DialPlan, recorded: bool) -> Rows:
    rows = [(f"via:{name}", "1") for name in sorted(plan.trunks)]
    for did, route in sorted(plan.inbound.items()):
        if plan.target(route.target) is None:
            continue
        decision = plan.decide("", did, from_trunk=True)
        if not recorded:
            decision = replace(decision, recording="never")
        rows.append((f"in:{did}", _wire(decision)))
    return tuple(rows)


def _outbound(plan: DialPlan, chain: DecisionChain, recorded: bool) -> Rows:
    rows = [(f"ask:{number}", "1") for number in sorted(chain.asked_numbers)]
    trunks = [(r, p) for r, p in plan.routes if r.trunk in plan.trunks]
    for i, (route, pattern) in enumerate(trunks):
        policy = (route.recording or plan.settings.recording) if recorded else "never"
        trunk = plan.trunks[route.trunk]
        answer = _wire(
            plan.trunk_decision(route, "", policy),
            strip=route.strip,
            prepend=route.prepend,
            host=f"{trunk.host}:{trunk.port}",
            cos=COS_RANK[route.cos],
            rec_fixed=1 if route.recording or not recorded else 0,
        )
        rows += [(f"re:{i}", pattern.regex()), (f"out:{i}", answer)]
    return tuple(rows)


def _callers(plan: DialPlan, chain: DecisionChain) -> Rows:
    callers = sorted(plan.extensions - chain.asked_callers)
    return tuple((ext, str(COS_RANK[plan.cos(ext)])) for ext in callers)
