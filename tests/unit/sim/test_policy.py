"""Channel choice, failure streaks, needs-review and slot-switch decisions (pure)."""

from __future__ import annotations

import datetime
from dataclasses import replace

from appliance.sim.limits import Limits
from appliance.sim.model import ChannelState, SimIdentity
from appliance.sim.policy import (
    Candidate,
    ReviewRule,
    SimView,
    channel_stopped,
    choose,
    collapse,
    slot_decision,
)
from appliance.sim.usage import Usage, recorded

NOON = datetime.datetime(2026, 3, 2, 12, tzinfo=datetime.UTC)
DAY = NOON.date()


def channel(
    name: str, iccid: str = "1", *, registered: bool = True, slots: int = 1
) -> ChannelState:
    return ChannelState(name, f"m-{name}", 0, slots, SimIdentity(iccid), registered)


def candidate(name: str, order: int, seconds: float = 0.0) -> Candidate:
    usage = Usage(day=DAY.isoformat(), connected_s_today=seconds)
    return Candidate(channel(name), SimView(name, Limits(), usage), order)


def test_strategies_pick_in_order_rotate_and_prefer_the_least_used() -> None:
    pool = [candidate("a", 0, 300), candidate("b", 1, 100), candidate("c", 2, 200)]
    assert choose(pool, "fixed-order", -1).state.channel == "a"
    assert choose(pool, "least-used", -1).state.channel == "b"
    picks, last = [], -1
    for _ in range(4):
        chosen = choose(pool, "round-robin", last)
        picks.append(chosen.state.channel)
        last = chosen.order
    assert picks == ["a", "b", "c", "a"]
    assert choose([pool[0], pool[2]], "round-robin", 0).state.channel == "c"


def test_a_channel_stops_for_removal_registration_flags_failures_and_limits() -> None:
    sim = SimView("1", Limits(calls_per_day=1), Usage(day=DAY.isoformat()))
    assert channel_stopped(channel("a"), sim, NOON, 3) is None
    assert channel_stopped(replace(channel("a"), sim=None), None, NOON, 3) == "sim-removed"
    assert channel_stopped(channel("a", registered=False), sim, NOON, 3) == "not-registered"
    assert channel_stopped(channel("a"), replace(sim, disabled=True), NOON, 3) == "sim-disabled"
    assert channel_stopped(channel("a"), replace(sim, retired=True), NOON, 3) == "sim-retired"
    failing = replace(sim, usage=replace(sim.usage, failure_streak=3))
    assert channel_stopped(channel("a"), failing, NOON, 3) == "failure-streak"
    used = replace(sim, usage=replace(sim.usage, calls_today=1))
    assert channel_stopped(channel("a"), used, NOON, 3) == "calls-per-day"


def history(answers: list[bool]) -> Usage:
    usage = Usage()
    for answered in answers:
        usage = recorded(usage, DAY, answered, 30.0 if answered else 0.0, 10.0, 10)
    return usage


def test_an_answer_rate_collapse_against_the_sims_own_baseline_needs_review() -> None:
    rule = ReviewRule(window=10, min_baseline_calls=20, ratio=0.5)
    healthy = [True, True, False] * 10
    assert collapse(history(healthy + [True] * 10), rule) is None
    reason = collapse(history([*healthy, True, *[False] * 9]), rule)
    assert reason == "answer rate 10% over the last 10 calls, baseline 67%"
    assert collapse(history([True] * 5 + [False] * 10), rule) is None  # too little history


def test_a_poor_sim_from_the_start_is_not_flagged_by_its_own_low_baseline() -> None:
    rule = ReviewRule(window=10, min_baseline_calls=20, ratio=0.5, min_baseline=0.2)
    assert collapse(history([False] * 40), rule) is None


def test_slot_switch_only_for_a_stopped_sim_and_an_other_slot_with_budget() -> None:
    dual = channel("a", slots=2)
    fresh = SimView("2", Limits(), Usage(day=DAY.isoformat()))
    spent = SimView("2", Limits(calls_per_day=0), Usage(day=DAY.isoformat()))
    decision = slot_decision(dual, "calls-per-day", 1, fresh, NOON, 3)
    assert decision is not None
    assert (decision.from_slot, decision.to_slot, decision.reason) == (0, 1, "calls-per-day")
    assert slot_decision(dual, "not-registered", 1, None, NOON, 3) is not None
    assert slot_decision(dual, "calls-per-day", 1, spent, NOON, 3) is None
    assert slot_decision(dual, None, 1, fresh, NOON, 3) is None
    assert slot_decision(channel("a"), "calls-per-day", 0, fresh, NOON, 3) is None
