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
from typing import TYPE_CHECKING

import pjsua2 as pj

from drivers.media.hangup import hang_up
from drivers.media.protocol import (
    Conference,
    Emit,
    Prompt,
    QueueCallback,
    QueueCancel,
    QueueCommand,
    QueueEvent,
    QueueHangup,
    QueueState,
)
from drivers.media.services import AGENT_LEG, CALLER_LEG

if TYPE_CHECKING:
    from drivers.media.worker import Leg, Worker


RELEASE_LIMIT_S = 10.0
# ringing, answered, ended: the states reported for an agent leg and a caller leg
_STATES: dict[str, tuple[QueueState, QueueState, QueueState]] = {
    AGENT_LEG: ("agent-ringing", "agent-answered", "agent-ended"),
    CALLER_LEG: ("callback-ringing", "callback-answered", "callback-ended"),
}


class CallbackLegs:
    """Callbacks placed by one worker, by the original call's SIP Call-ID."""

    def __init__(self, worker: Worker, emit: Emit) -> None:
        self.worker = worker
        self.emit = emit
        self.agents: dict[str, Leg] = {}
        self.callers: dict[str, Leg] = {}
        self.numbers: dict[str, tuple[str, str]] = {}
        self.releases: dict[str, Prompt] = {}
        self.ring_s: dict[str, float] = {}
        self.bridged: set[str] = set()

    def command(self, cmd: QueueCommand) -> None:
        """``queue-callback`` places the agent leg; cancel and hang-up end this worker's
        legs of that callback (other commands and commands for other calls are ignored)."""
        key = cmd.id
        if isinstance(cmd, QueueCallback):
            self._ring_agent(key, cmd.agent, cmd.caller, cmd.display)
            if cmd.release and key in self.agents:
                self.releases[key] = cmd.release
            if cmd.ring_s and key in self.agents:
                self.ring_s[key] = cmd.ring_s
        elif isinstance(cmd, (QueueCancel, QueueHangup)):
            hang_up(self.agents.get(key))
            hang_up(self.callers.get(key))

    def state(self, leg: Leg, state: int, code: int, reason: str) -> None:
        """Progress of an agent or caller leg of a callback."""
        key = leg.arg
        sip_call_id = "" if leg.service == AGENT_LEG else _sip_call_id(leg)
        ringing, answered, _ = _STATES[leg.service]
        if state == pj.PJSIP_INV_STATE_EARLY:
            self.emit(QueueEvent(key, ringing, agent=leg.tag or "", code=code,
                                 sip_call_id=sip_call_id))  # fmt: skip
        elif state == pj.PJSIP_INV_STATE_CONFIRMED:
            leg.answered = True
            if leg.service == CALLER_LEG:
                leg.deadline = None
            self.emit(QueueEvent(key, answered, agent=leg.tag or "", sip_call_id=sip_call_id))
            if leg.service == AGENT_LEG:
                self._ring_caller(key, leg)
            self._bridge(key)
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._ended(key, leg, code, reason, sip_call_id)

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
            self.emit(QueueEvent(state="agent-ended", id=key, agent=agent, code=409,
                                 reason="already-ringing", answered=False))  # fmt: skip
            return
        cmd = Conference(id=agent, to=agent, from_user=caller, display=display, room=key)
        placed = self.worker.originate(cmd, service=AGENT_LEG)
        if placed is None:
            self.emit(QueueEvent(state="agent-ended", id=key, agent=agent, code=503,
                                 reason="worker-full", answered=False))  # fmt: skip
            return
        self.agents[key] = placed
        self.numbers[key] = (caller, display)

    def _ring_caller(self, key: str, agent: Leg) -> None:
        caller, display = self.numbers.get(key, ("", ""))
        cmd = Conference(id=caller, to=caller, from_user=agent.tag or "", display=display,
                         room=key)  # fmt: skip
        placed = self.worker.originate(cmd, service=CALLER_LEG) if caller else None
        if placed is None:
            self.emit(QueueEvent(state="callback-ended", id=key, agent=agent.tag or "", code=503,
                                 reason="not-placed", answered=False))  # fmt: skip
            hang_up(agent)
            return
        self.callers[key] = placed
        if key in self.ring_s:
            placed.deadline = time.monotonic() + self.ring_s[key]

    def _ended(self, key: str, leg: Leg, code: int, reason: str, sip_call_id: str) -> None:
        self.worker.forget(leg.call.getId(), leg)
        agent_leg = leg.service == AGENT_LEG
        mine, other = (self.agents, self.callers) if agent_leg else (self.callers, self.agents)
        if mine.get(key) is leg:
            del mine[key]
        if agent_leg:
            self.numbers.pop(key, None)
            self.ring_s.pop(key, None)
        release = self.releases.pop(key, None)
        if key in self.bridged:
            self.bridged.discard(key)
            self.worker.call_ended(key)
        self.emit(QueueEvent(key, _STATES[leg.service][2], agent=leg.tag or "", code=code,
                             reason=reason, answered=leg.answered,
                             sip_call_id=sip_call_id))  # fmt: skip
        agent = other.get(key)
        if not agent_leg and not leg.answered and release is not None:
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
