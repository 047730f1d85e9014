"""The ACD: which waiting caller is offered to which agents, and the agents' states. Pure.

Theory of operation: callers wait per queue, higher priority first, then in order of
arrival. ``offers`` pairs the head of each queue with the member agents the queue's
strategy picks among those logged in, available and registered (``choice``: one agent,
or every free one for ring-all). The agents turn ``ringing`` in the same step, so no
other offer can reach them until this one ends: ``declined`` (ring timeout, busy, gone)
pauses the agent with reason ``no-answer`` and, once none rings for it, the caller is
back at the head; ``answered`` takes the caller out of the queue and puts the agent
``on-call``, while the others rung for it (ring-all) stay ringing until their phones
stop (``released``); ``finished`` starts the queue's wrap-up, which ``tick`` ends, and
records the call's handle time for ``expected_wait``. A caller being offered is skipped
by later ``offers``; ``expired`` names callers past the queue's maximum wait.

States: logged-out, available, ringing, on-call, wrap-up, paused (with a reason).
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from appliance.contact.choice import Candidate, choose
from appliance.contact.settings import AgentSettings, QueueSettings

STATES = ("logged-out", "available", "ringing", "on-call", "wrap-up", "paused")
BUSY = ("ringing", "on-call")
STAFFED = ("available", "ringing", "on-call", "wrap-up")
HANDLE_TIMES_KEPT = 20


def local_day(now: float) -> str:
    """The appliance's local date of ``now`` (epoch seconds)."""
    return time.strftime("%Y-%m-%d", time.localtime(now))


class AcdError(ValueError):
    """A request the ACD refuses: ``error_id`` says which."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id


def wait_words(seconds: float) -> str:
    """An expected wait as spoken: "less than a minute" below 60 s, else whole minutes,
    rounded to the nearest ("1 minute", "4 minutes")."""
    minutes = max(1, round(seconds / 60))
    if seconds < 60:
        return "less than a minute"
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


@dataclass
class Agent:
    """One agent (an extension) and its state since ``since``."""

    number: str
    state: str = "logged-out"
    reason: str = ""
    since: float = 0.0
    idle_since: float = 0.0
    registered: bool = True
    wrapup_until: float = 0.0
    call_id: str = ""
    calls: int = 0
    calls_today: int = 0
    calls_day: str = ""

    def record(self) -> dict[str, Any]:
        """The agent as a JSON-able document."""
        return asdict(self)


@dataclass
class Waiting:
    """A caller in a queue."""

    call_id: str
    queue: str
    caller: str
    priority: int
    entered: float
    seq: int
    position: int
    offered: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    skills: dict[str, int] = field(default_factory=dict)
    callback: bool = False
    tries: int = 0
    not_before: float = 0.0

    @property
    def offered_to(self) -> str:
        """The (first) agent being rung for the caller, "" when none."""
        return self.offered[0] if self.offered else ""

    @property
    def order(self) -> tuple[int, int]:
        """Sort key: higher priority first, then arrival."""
        return (-self.priority, self.seq)


@dataclass(frozen=True)
class Offer:
    """Ring ``agent`` for the caller ``call_id`` of ``queue``."""

    call_id: str
    queue: str
    agent: str


class Acd:
    """Queues of waiting callers and the agents who answer them."""

    def __init__(self, queues: Mapping[str, QueueSettings],
                 day: Callable[[float], str] = local_day) -> None:  # fmt: skip
        self.queues = dict(queues)
        self.waiting: dict[str, list[Waiting]] = {name: [] for name in queues}
        self.agents = {n: Agent(n) for q in queues.values() for n in q.numbers}
        self.last_offered: dict[str, str] = {}
        self.handle_times: dict[str, deque[float]] = {
            name: deque(maxlen=HANDLE_TIMES_KEPT) for name in queues
        }
        self._day = day
        self._seq = itertools.count()

    def enter(self, call_id: str, queue: str, caller: str, now: float,
              priority: int | None = None, skills: Mapping[str, int] | None = None,
              ) -> Waiting:  # fmt: skip
        """The caller joins ``queue``; priority 1 for the queue's priority callers; the
        skills it needs are the queue's unless given."""
        settings = self.queues[queue]
        if priority is None:
            priority = 1 if caller in settings.priority_callers else 0
        entry = Waiting(call_id, queue, caller, priority, now, next(self._seq), 0)
        entry.skills = dict(settings.skills if skills is None else skills)
        line = self.waiting[queue]
        bisect.insort(line, entry, key=lambda w: w.order)
        entry.position = line.index(entry) + 1
        return entry

    def find(self, call_id: str) -> Waiting | None:
        """The waiting caller ``call_id``."""
        return next((w for w in self._all() if w.call_id == call_id), None)

    def position(self, call_id: str) -> int:
        """The caller's place in its queue (1 = next), 0 when not waiting."""
        entry = self.find(call_id)
        return 0 if entry is None else self.waiting[entry.queue].index(entry) + 1

    def leave(self, call_id: str) -> Waiting | None:
        """The caller left the queue unanswered (hung up, overflowed).

        An agent being rung for it stays ``ringing`` until its phone stopped ringing
        (``released``), so it is never rung twice at once."""
        entry = self.find(call_id)
        if entry is not None:
            self.waiting[entry.queue].remove(entry)
        return entry

    def wait_again(self, entry: Waiting, not_before: float) -> None:
        """A callback whose try failed takes its place again (its arrival keeps its
        order), to be offered from ``not_before`` on."""
        entry.offered.clear()
        entry.not_before = not_before
        line = self.waiting[entry.queue]
        bisect.insort(line, entry, key=lambda w: w.order)

    def released(self, call_id: str, agent_number: str, now: float) -> None:
        """The agent's phone stopped ringing for a caller who left (or its offer could not
        be placed): available again; a caller still waiting can be offered again."""
        entry = self.find(call_id)
        if entry is not None and agent_number in entry.offered:
            entry.offered.remove(agent_number)
        agent = self.agents[agent_number]
        if agent.state == "ringing" and agent.call_id == call_id:
            self._set(agent, "available", now)

    def offers(self, now: float) -> list[Offer]:
        """New offers: callers not yet offered, in order, to the agents their queue's
        strategy picks; a caller no free agent fits (skills) lets the next one try."""
        found = []
        for name, line in self.waiting.items():
            for entry in line:
                if entry.offered or entry.not_before > now:
                    continue
                picked = self._pick(name, entry, now)[: 1 if entry.callback else None]
                if not picked and self.queues[name].strategy != "skills":
                    break
                for agent in picked:
                    entry.offered.append(agent.number)
                    self._set(agent, "ringing", now, call_id=entry.call_id)
                    found.append(Offer(entry.call_id, name, agent.number))
                    self.last_offered[name] = agent.number
        return found

    def declined(self, call_id: str, agent_number: str, now: float) -> None:
        """The offer ended unanswered: the agent pauses (``no-answer``), the caller waits on."""
        entry = self.find(call_id)
        if entry is not None and agent_number in entry.offered:
            entry.offered.remove(agent_number)
        agent = self.agents[agent_number]
        if agent.state == "ringing" and agent.call_id == call_id:
            self._set(agent, "paused", now, reason="no-answer")

    def answered(self, call_id: str, agent_number: str, now: float) -> Waiting | None:
        """The agent took the call: the caller leaves the queue, the agent is on the call."""
        entry = self.find(call_id)
        if entry is None:
            return None
        self.waiting[entry.queue].remove(entry)
        agent = self.agents[agent_number]
        day = self._day(now)
        agent.calls_today = (agent.calls_today if agent.calls_day == day else 0) + 1
        agent.calls, agent.calls_day = agent.calls + 1, day
        self._set(agent, "on-call", now, call_id=call_id)
        return entry

    def finished(self, agent_number: str, queue: str, now: float) -> None:
        """The agent's queue call ended: wrap-up for the queue's time."""
        agent = self.agents[agent_number]
        if agent.state != "on-call":
            return
        wrapup = self.queues[queue].wrapup_s
        self.handle_times[queue].append(now - agent.since + wrapup)
        self._set(agent, "wrap-up", now)
        agent.wrapup_until = now + wrapup

    def expected_wait(self, call_id: str) -> float:
        """Seconds the caller can expect to wait: its position times the queue's average
        handle time (talk and wrap-up of its last ``HANDLE_TIMES_KEPT`` calls, the queue's
        ``handle_time_s`` before any), divided by the agents logged in and not paused
        (at least one)."""
        entry = self.find(call_id)
        if entry is None:
            return 0.0
        settings, recent = self.queues[entry.queue], self.handle_times[entry.queue]
        handle = sum(recent) / len(recent) if recent else settings.handle_time_s
        staffed = [n for n in settings.numbers
                   if self.agents[n].state in STAFFED and self.agents[n].registered]  # fmt: skip
        return self.position(call_id) * handle / max(1, len(staffed))

    def tick(self, now: float) -> list[Agent]:
        """Ends wrap-ups that ran their time; returns the agents now available."""
        done = [a for a in self.agents.values()
                if a.state == "wrap-up" and now >= a.wrapup_until]  # fmt: skip
        for agent in done:
            self._set(agent, "available", now)
        return done

    def expired(self, now: float) -> list[Waiting]:
        """Callers not being offered who waited past their queue's maximum wait (a caller
        waiting for a callback has hung up: it waits for its turn)."""
        limit = {name: q.max_wait_s for name, q in self.queues.items()}
        return [w for w in self._all() if not w.offered and not w.callback
                and now - w.entered >= limit[w.queue]]  # fmt: skip

    def login(self, number: str, now: float) -> Agent:
        """The agent starts taking calls (a logged-in agent stays as it is)."""
        agent = self._agent(number)
        if agent.state == "logged-out":
            self._set(agent, "available", now)
        return agent

    def logout(self, number: str, now: float) -> Agent:
        """The agent stops taking calls; refused while ringing or on a call."""
        return self._change(number, "logged-out", now)

    def pause(self, number: str, reason: str, now: float) -> Agent:
        """The agent takes a break with a reason; refused while ringing or on a call."""
        return self._change(number, "paused", now, reason)

    def resume(self, number: str, now: float) -> Agent:
        """A paused agent is available again."""
        agent = self._agent(number)
        if agent.state != "paused":
            raise AcdError("agent-not-paused", f"agent {number} is {agent.state}, not paused")
        self._set(agent, "available", now)
        return agent

    def registered(self, number: str, registered: bool) -> None:
        """The agent's phone registered or went away (unregistered agents get no offers)."""
        if number in self.agents:
            self.agents[number].registered = registered

    def join(self, queue: str, member: AgentSettings) -> Agent:
        """``member`` joins ``queue`` (dynamic membership) and is offered its calls like
        the configured agents; a new agent starts logged out."""
        settings = self.queues[queue]
        if member.extension in settings.numbers:
            raise AcdError("already-member", f"{member.extension} is a member of {queue}")
        self.queues[queue] = settings.model_copy(update={"agents": (*settings.agents, member)})
        return self.agents.setdefault(member.extension, Agent(member.extension))

    def part(self, queue: str, number: str) -> None:
        """The agent leaves ``queue`` (refused while ringing or on a call); an agent of no
        queue any more is forgotten."""
        settings = self.queues[queue]
        if number not in settings.numbers:
            raise AcdError("not-a-member", f"{number} is no member of {queue}")
        if self.agents[number].state in BUSY:
            raise AcdError("agent-busy", f"agent {number} is {self.agents[number].state}")
        rest = tuple(a for a in settings.agents if a.extension != number)
        self.queues[queue] = settings.model_copy(update={"agents": rest})
        if not any(number in q.numbers for q in self.queues.values()):
            del self.agents[number]

    def restore(self, doc: Mapping[str, Any], now: float) -> None:
        """An agent's stored state after a restart; calls did not survive, so a ringing,
        talking or wrapping-up agent is available again."""
        agent = self.agents.get(str(doc.get("number")))
        if agent is None:
            return
        for name in ("state", "reason", "since", "idle_since", "calls", "calls_today",
                     "calls_day"):  # fmt: skip
            if name in doc:
                setattr(agent, name, doc[name])
        if agent.state not in STATES or agent.state in (*BUSY, "wrap-up"):
            self._set(agent, "available", now)

    def _change(self, number: str, state: str, now: float, reason: str = "") -> Agent:
        agent = self._agent(number)
        if agent.state in BUSY:
            raise AcdError("agent-busy", f"agent {number} is {agent.state}")
        self._set(agent, state, now, reason=reason)
        return agent

    def _agent(self, number: str) -> Agent:
        agent = self.agents.get(number)
        if agent is None:
            raise AcdError("agent-not-found", f"{number} is no agent of any queue")
        return agent

    def _set(self, agent: Agent, state: str, now: float, reason: str = "",
             call_id: str = "") -> None:  # fmt: skip
        if state == "available" and agent.state != "available":
            agent.idle_since = now
        agent.state, agent.reason, agent.since, agent.call_id = state, reason, now, call_id

    def _pick(self, queue: str, entry: Waiting, now: float) -> list[Agent]:
        settings, day = self.queues[queue], self._day(now)
        free = [Candidate(member, agent.idle_since,
                          agent.calls_today if agent.calls_day == day else 0)
                for member in settings.agents
                for agent in (self.agents[member.extension],)
                if agent.state == "available" and agent.registered]  # fmt: skip
        last = self.last_offered.get(queue, "")
        chosen = choose(settings, free, entry.skills, now - entry.entered, last)
        return [self.agents[c.member.extension] for c in chosen]

    def _all(self) -> Iterator[Waiting]:
        for line in self.waiting.values():
            yield from line
