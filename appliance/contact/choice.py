"""Which free agents a waiting caller is offered to: the queue's ``strategy``. Pure.

Every strategy first keeps the free agents with the lowest ``penalty`` in the queue, so a
penalty-1 agent is rung only while no penalty-0 agent is free. Then:

- ``ring-all``: all of them; the first to answer takes the call.
- ``longest-idle``: the one available the longest.
- ``round-robin``: the next one in the queue's agent order after the agent last offered
  a call of this queue (wrapping round), so each takes its turn across calls.
- ``fewest-calls``: the one that answered the fewest calls today (then longest idle).
- ``skills``: only agents whose levels meet the caller's requirement as relaxed by its
  wait (``required``) are considered before the penalty; among those the best total level
  in the required skills, then longest idle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from appliance.contact.settings import AgentSettings, QueueSettings, check_skills


@dataclass(frozen=True)
class Candidate:
    """A free agent of the queue: its membership, idle since, calls answered today."""

    member: AgentSettings
    idle_since: float
    calls_today: int


def required(skills: Mapping[str, int], waited_s: float, relax_s: float) -> dict[str, int]:
    """The caller's minimum levels after ``waited_s``: each drops by one every ``relax_s``
    seconds (0: never); a skill whose minimum reaches 0 is no longer required."""
    drop = int(waited_s // relax_s) if relax_s > 0 else 0
    return {name: level - drop for name, level in skills.items() if level - drop > 0}


def parse_skills(text: str) -> dict[str, int]:
    """Skills a caller needs, written ``billing:4,english:3`` (an IVR flow variable);
    ValueError when malformed."""
    skills = {}
    for part in text.split(","):
        name, sep, level = part.strip().partition(":")
        if not sep or not level.strip().isdigit():
            raise ValueError(f"skill {part.strip()!r} is not name:level")
        skills[name.strip()] = int(level)
    return check_skills(skills)


def qualifies(member: AgentSettings, need: Mapping[str, int]) -> bool:
    """The agent has every needed skill at the needed level or above."""
    return all(member.skills.get(name, 0) >= level for name, level in need.items())


def choose(settings: QueueSettings, free: Sequence[Candidate], wanted: Mapping[str, int],
           waited_s: float, last: str) -> list[Candidate]:  # fmt: skip
    """The agents to ring for a caller who wants ``wanted`` skills and waited ``waited_s``,
    by the queue's strategy (empty: none fits)."""
    if settings.strategy == "skills":
        need = required(wanted, waited_s, settings.skill_relax_s)
        free = [c for c in free if qualifies(c.member, need)]
    if not free:
        return []
    lowest = min(c.member.penalty for c in free)
    free = [c for c in free if c.member.penalty == lowest]
    if settings.strategy == "ring-all":
        return list(free)
    if settings.strategy == "round-robin":
        return [_next_after(settings.numbers, free, last)]
    return [min(free, key=_ranking(settings.strategy, wanted))]


def _ranking(strategy: str, wanted: Mapping[str, int]) -> Callable[[Candidate], tuple[float, ...]]:
    """Sort key of the single-agent strategies: the first sorts best."""
    if strategy == "fewest-calls":
        return lambda c: (c.calls_today, c.idle_since)
    if strategy == "skills":
        return lambda c: (-sum(c.member.skills.get(n, 0) for n in wanted), c.idle_since)
    return lambda c: (c.idle_since,)


def _next_after(order: Sequence[str], free: Sequence[Candidate], last: str) -> Candidate:
    start = order.index(last) + 1 if last in order else 0
    turn = {number: (i - start) % len(order) for i, number in enumerate(order)}
    return min(free, key=lambda c: turn[c.member.extension])
