"""The media worker's queue callbacks: a caller who pressed 1 hung up keeping their place;
when their turn comes the appliance has a worker ring the agent first and, once the agent
answers, call the caller back and bridge the two.

    queue-callback  id, agent, caller,     ring ``agent`` (presenting the caller's number
                    display, release,      with ``display``); once it answers, call
                    ring_s                 ``caller`` from the agent's extension (for at
                                           most ``ring_s``) and bridge; when the caller
                                           does not answer, play the agent ``release`` (a
                                           prompt), then hang up
    queue-cancel    id                     stop ringing the agent
    queue-hangup    id                     end both legs

Events (``ev`` = ``queue``, ``id`` the original call's SIP Call-ID): agent-ringing,
agent-answered, agent-ended (agent, code, answered) as for a queued caller, then
callback-ringing, callback-answered and callback-ended (code, answered) for the call to
the caller, each with ``sip_call_id``, the SIP Call-ID of that call (its CDR). Either
leg ending ends the other, except an answered agent leg whose caller did not answer: it
hears ``release`` first. Runs on the worker's main thread only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

from drivers.media.hangup import hang_up
from drivers.media.protocol import Prompt

if TYPE_CHECKING:
    from drivers.media.worker import Leg, Worker


AGENT_LEG = "callback-agent"
CALLER_LEG = "callback-caller"
RELEASE_LIMIT_S = 10.0


class CallbackLegs:
    """Callbacks placed by one worker, by the original call's SIP Call-ID."""

    def __init__(self, worker: Worker, emit: Callable[..., None]) -> None:
        self.worker = worker
        self.emit = emit
        self.agents: dict[str, Leg] = {}
        self.callers: dict[str, Leg] = {}
        self.numbers: dict[str, tuple[str, str]] = {}
        self.releases: dict[str, Prompt] = {}
        self.ring_s: dict[str, float] = {}
        self.bridged: set[str] = set()

    def command(self, name: str, cmd: dict[str, Any]) -> None:
        """``queue-callback`` places the agent leg; cancel and hang-up end this worker's
        legs of that callback (commands for other calls are ignored)."""
        key = str(cmd["id"])
        if name == "queue-callback":
            self._ring_agent(key, str(cmd["agent"]), str(cmd["caller"]), str(cmd["display"]))
            if cmd.get("release") and key in self.agents:
                self.releases[key] = Prompt(**dict(cmd["release"]))
            if cmd.get("ring_s") and key in self.agents:
                self.ring_s[key] = float(cmd["ring_s"])
        elif name in ("queue-cancel", "queue-hangup"):
            hang_up(self.agents.get(key))
            hang_up(self.callers.get(key))

    def state(self, leg: Leg, state: int, code: int, reason: str) -> None:
        """Progress of an agent or caller leg of a callback."""
        kind = "agent" if leg.service == AGENT_LEG else "callback"
        key = leg.arg
        extra = {} if kind == "agent" else {"sip_call_id": _sip_call_id(leg)}
        if state == pj.PJSIP_INV_STATE_EARLY:
            self.emit(ev="queue", state=f"{kind}-ringing", id=key, agent=leg.tag, code=code,
                      **extra)  # fmt: skip
        elif state == pj.PJSIP_INV_STATE_CONFIRMED:
            leg.answered = True
            if kind == "callback":
                leg.deadline = None
            self.emit(ev="queue", state=f"{kind}-answered", id=key, agent=leg.tag, **extra)
            if kind == "agent":
                self._ring_caller(key, leg)
            self._bridge(key)
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._ended(key, leg, kind, code, reason, extra)

    def media(self, leg: Leg) -> None:
        """Audio is up on a leg: bridge once both legs have it and the caller answered."""
        self._bridge(leg.arg)

    def expired(self, leg: Leg) -> None:
        """The release message to an agent whose caller did not answer ended, or the
        caller's phone rang ``ring_s``: hang up."""
        hang_up(leg)

    def shutdown(self) -> None:
        """Drop every pjsua2 reference (before libDestroy)."""
        self.agents.clear()
        self.callers.clear()
        self.releases.clear()
        self.ring_s.clear()

    def _ring_agent(self, key: str, agent: str, caller: str, display: str) -> None:
        if key in self.agents:
            self.emit(ev="queue", state="agent-ended", id=key, agent=agent, code=409,
                      reason="already-ringing", answered=False)  # fmt: skip
            return
        cmd = {"id": agent, "to": agent, "from_user": caller, "display": display, "room": key}
        placed = self.worker.originate(cmd, service=AGENT_LEG)
        if placed is None:
            self.emit(ev="queue", state="agent-ended", id=key, agent=agent, code=503,
                      reason="worker-full", answered=False)  # fmt: skip
            return
        self.agents[key] = placed
        self.numbers[key] = (caller, display)

    def _ring_caller(self, key: str, agent: Leg) -> None:
        caller, display = self.numbers.get(key, ("", ""))
        cmd = {"id": caller, "to": caller, "from_user": agent.tag, "display": display,
               "room": key}  # fmt: skip
        placed = self.worker.originate(cmd, service=CALLER_LEG) if caller else None
        if placed is None:
            self.emit(ev="queue", state="callback-ended", id=key, agent=agent.tag, code=503,
                      reason="not-placed", answered=False)  # fmt: skip
            hang_up(agent)
            return
        self.callers[key] = placed
        if key in self.ring_s:
            placed.deadline = time.monotonic() + self.ring_s[key]

    def _ended(self, key: str, leg: Leg, kind: str, code: int, reason: str,
               extra: dict[str, str]) -> None:  # fmt: skip
        self.worker.forget(leg.call.getId(), leg)
        mine, other = (self.agents, self.callers) if kind == "agent" else (self.callers,
                                                                           self.agents)  # fmt: skip
        if mine.get(key) is leg:
            del mine[key]
        if kind == "agent":
            self.numbers.pop(key, None)
            self.ring_s.pop(key, None)
        release = self.releases.pop(key, None)
        if key in self.bridged:
            self.bridged.discard(key)
            self.worker.supervisors.call_ended(key)
        self.emit(ev="queue", state=f"{kind}-ended", id=key, agent=leg.tag, code=code,
                  reason=reason, answered=leg.answered, **extra)  # fmt: skip
        agent = other.get(key)
        if kind == "callback" and not leg.answered and release is not None:
            self._release(agent, release)
        else:
            hang_up(agent)

    def _release(self, agent: Leg | None, release: Prompt) -> None:
        """Tell the agent the caller did not answer, then hang up (``expired``)."""
        if agent is None or agent.audio is None or not agent.answered:
            hang_up(agent)
            return
        self.worker.play(agent, release, loop=False)
        if release.file:
            agent.deadline = time.monotonic() + RELEASE_LIMIT_S

    def _bridge(self, key: str) -> None:
        agent, caller = self.agents.get(key), self.callers.get(key)
        if agent is None or caller is None or not caller.answered:
            return
        if agent.audio is None or caller.audio is None or key in self.bridged:
            return
        self.bridged.add(key)
        caller.audio.startTransmit(agent.audio)
        agent.audio.startTransmit(caller.audio)


def _sip_call_id(leg: Leg) -> str:
    """The SIP Call-ID of the leg's call ("" once pjsua2 cannot tell)."""
    try:
        return str(leg.call.getInfo().callIdString)
    except pj.Error:
        return ""
