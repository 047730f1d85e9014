"""The agent report: per site and agent, time by state from the agent state log, and the
calls answered and talk time from the agent rollup (the queue CDRs' ``queue_agent``).

Theory of operation: an agent's state at the start of the range is its last change
before it; each change then holds until the next one (in the site's order, the outbox
sequence), and the last one until the end of the range or now, whichever is first.
Logged-in time is every state but ``logged-out``; occupancy is on-call time of logged-in
time. Calls and talk time count the hours that start inside the range, like the other
reports.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from aggregator.store.schema import agent_rollup, agent_states

HOUR_MS = 3_600_000
_STATE = ("site_id", "agent", "seq", "state", "reason", "at_ms")


@dataclass
class AgentTime:
    """What one agent did over the range, in milliseconds and calls."""

    by_state: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    paused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    answered: int = 0
    talk_s: float = 0.0

    def line(self) -> dict[str, Any]:
        logged_in = sum(ms for state, ms in self.by_state.items() if state != "logged-out")
        on_call = self.by_state.get("on-call", 0)
        return {
            "logged_in_s": round(logged_in / 1000, 1),
            "available_s": round(self.by_state.get("available", 0) / 1000, 1),
            "on_call_s": round(on_call / 1000, 1),
            "wrap_up_s": round(self.by_state.get("wrap-up", 0) / 1000, 1),
            "paused_s": round(sum(self.paused.values()) / 1000, 1),
            "paused_by_reason": {r: round(ms / 1000, 1) for r, ms in sorted(self.paused.items())},
            "occupancy_percent": round(100 * on_call / logged_in, 1) if logged_in else None,
            "calls_answered": self.answered,
            "talk_s": round(self.talk_s, 1),
        }


def agent_report(
    conn: sa.Connection, sites: frozenset[str] | None, start_ms: int, end_ms: int, now_ms: int
) -> list[dict[str, Any]]:
    """Per site and agent: logged-in, paused by reason, occupancy, calls and talk time."""
    agents: dict[tuple[str, str], AgentTime] = defaultdict(AgentTime)
    until = min(end_ms, now_ms)
    changes = [
        *conn.execute(_before(sites, start_ms)),
        *conn.execute(_within(sites, start_ms, end_ms)),
    ]
    _add_times(agents, sorted(changes, key=lambda c: (c.site_id, c.agent, c.seq)), start_ms, until)
    for site_id, agent, answered, talk_s in conn.execute(_calls(sites, start_ms, end_ms)):
        agents[(site_id, agent)].answered = int(answered)
        agents[(site_id, agent)].talk_s = float(talk_s)
    return [
        {"site_id": site_id, "agent": agent, **time.line()}
        for (site_id, agent), time in sorted(agents.items())
    ]


def _add_times(
    agents: dict[tuple[str, str], AgentTime], changes: Iterable[Any], start_ms: int, until: int
) -> None:
    """Credit each change with the time to the next change of its agent (or ``until``)."""
    ordered = list(changes)
    for change, following in zip(ordered, [*ordered[1:], None], strict=True):
        same = following is not None and (following.site_id, following.agent) == (
            change.site_id, change.agent)  # fmt: skip
        begin = max(change.at_ms, start_ms)
        end = min(following.at_ms, until) if same and following is not None else until
        if end <= begin:
            continue
        time = agents[(change.site_id, change.agent)]
        time.by_state[change.state] += end - begin
        if change.state == "paused":
            time.paused[change.reason or "none"] += end - begin


def _scoped(query: sa.Select[Any], sites: frozenset[str] | None) -> sa.Select[Any]:
    return query if sites is None else query.where(agent_states.c.site_id.in_(sorted(sites)))


def _within(sites: frozenset[str] | None, start_ms: int, end_ms: int) -> sa.Select[Any]:
    a = agent_states.c
    query = sa.select(*(a[name] for name in _STATE))
    return _scoped(query.where(a.at_ms >= start_ms, a.at_ms < end_ms), sites)


def _before(sites: frozenset[str] | None, start_ms: int) -> sa.Select[Any]:
    """Each agent's last change before ``start_ms``: its state when the range begins."""
    a = agent_states.c
    latest = sa.func.row_number().over(
        partition_by=(a.site_id, a.agent), order_by=(a.at_ms.desc(), a.seq.desc())
    )
    ranked = _scoped(
        sa.select(*(a[name] for name in _STATE), latest.label("latest")).where(a.at_ms < start_ms),
        sites,
    ).subquery()
    return sa.select(*(ranked.c[name] for name in _STATE)).where(ranked.c.latest == 1)


def _calls(sites: frozenset[str] | None, start_ms: int, end_ms: int) -> sa.Select[Any]:
    r = agent_rollup.c
    first = -(-start_ms // HOUR_MS) * HOUR_MS
    query = sa.select(r.site_id, r.agent, sa.func.sum(r.answered), sa.func.sum(r.talk_s))
    query = query.where(r.hour_ms >= first, r.hour_ms < end_ms)
    if sites is not None:
        query = query.where(r.site_id.in_(sorted(sites)))
    return query.group_by(r.site_id, r.agent)
