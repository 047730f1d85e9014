"""Pure SIM policy: may a SIM take a call, which channel dials, when to use the other slot.

A SIM stops taking calls when it is retired or disabled by the operator, missing from its
slot, not registered, has failed ``max_failures`` calls in a row, or reached a limit. The
answer-rate check never stops a SIM: it only flags it ``needs-review`` for a person.

A dual-SIM modem whose selected SIM is stopped is switched to its other slot when that
SIM is not known to be stopped too (an unseen slot is tried once; registration is only
known after the switch). A busy channel is never switched, and a modem is not switched
again within the cool-down, so two unusable SIMs cannot make it flap.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from appliance.sim.limits import Limits, exhausted
from appliance.sim.model import ChannelState
from appliance.sim.usage import Usage

Strategy = Literal["round-robin", "least-used", "fixed-order"]


@dataclass(frozen=True)
class SimView:
    """What the policy knows about one SIM: its limits, usage and operator flags."""

    iccid: str
    limits: Limits
    usage: Usage
    disabled: bool = False
    retired: bool = False


@dataclass(frozen=True)
class ReviewRule:
    """Answer-rate collapse: over the last ``window`` calls below ``ratio`` x the baseline."""

    window: int = 20
    min_baseline_calls: int = 20
    ratio: float = 0.5
    min_baseline: float = 0.2


@dataclass(frozen=True)
class Candidate:
    """An idle channel whose SIM may take a call."""

    state: ChannelState
    sim: SimView
    order: int


@dataclass(frozen=True)
class SlotDecision:
    """Select ``to_slot`` on ``modem`` because ``reason``."""

    channel: str
    modem: str
    from_slot: int
    to_slot: int
    reason: str


def sim_stopped(sim: SimView, local: datetime.datetime, max_failures: int) -> str | None:
    """Why the SIM itself may not take a call (operator flags, failures, limits)."""
    if sim.retired:
        return "sim-retired"
    if sim.disabled:
        return "sim-disabled"
    if sim.usage.failure_streak >= max_failures:
        return "failure-streak"
    return exhausted(sim.limits, sim.usage, local)


def channel_stopped(
    state: ChannelState, sim: SimView | None, local: datetime.datetime, max_failures: int
) -> str | None:
    """Why the channel may not take a call now (None: it may)."""
    if state.sim is None or sim is None:
        return "sim-removed"
    if not state.registered:
        return "not-registered"
    return sim_stopped(sim, local, max_failures)


def collapse(usage: Usage, rule: ReviewRule) -> str | None:
    """A person should look at this SIM: its recent answer rate fell far below its baseline."""
    if len(usage.recent) < rule.window or usage.baseline is None:
        return None
    if usage.baseline_calls < rule.min_baseline_calls or usage.baseline < rule.min_baseline:
        return None
    rate = sum(usage.recent) / len(usage.recent)
    if rate >= rule.ratio * usage.baseline:
        return None
    return (
        f"answer rate {rate:.0%} over the last {len(usage.recent)} calls, "
        f"baseline {usage.baseline:.0%}"
    )


def choose(candidates: Sequence[Candidate], strategy: Strategy, last: int) -> Candidate:
    """The channel to use among eligible ``candidates`` (not empty); ``last``: order used last."""
    ordered = sorted(candidates, key=lambda c: c.order)
    if strategy == "fixed-order":
        return ordered[0]
    if strategy == "least-used":
        return min(ordered, key=lambda c: (c.sim.usage.connected_s_today, c.sim.usage.calls_today))
    return next((c for c in ordered if c.order > last), ordered[0])


def slot_decision(
    state: ChannelState,
    stopped: str | None,
    other_slot: int,
    other: SimView | None,
    local: datetime.datetime,
    max_failures: int,
) -> SlotDecision | None:
    """Select the other slot when this SIM is ``stopped`` and the other is not known to be."""
    if stopped is None or state.slots < 2:
        return None
    if other is not None and sim_stopped(other, local, max_failures) is not None:
        return None
    return SlotDecision(state.channel, state.modem, state.slot, other_slot, stopped)
