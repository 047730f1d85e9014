"""The media worker's queue handler: callers wait here while the appliance's ACD picks
an agent, then the worker rings the agent and bridges the two.

A call for ``queue-<name>`` is answered and, once its audio is up, reported as a
``queue`` event ``start`` (id: the SIP Call-ID, queue, caller). Which agent to ring,
when to give up and where to overflow are the business of ``appliance.contact``:

    queue-hold      id, prompt{...}        play the prompt to the caller in a loop (music)
    queue-announce  id, prompt{...}        play the prompt once, then the music again
    queue-offer     id, agent, display     ring ``agent`` through Kamailio, presenting the
                                           caller; once it answers, caller and agent hear
                                           each other and the music stops. Several agents
                                           may be rung for one caller (ring-all): the first
                                           to answer is bridged, the others' legs end
    queue-cancel    id[, agent]            stop ringing the agent (without: every agent)
    queue-answer    id, agent              answer on desk: ring the agent again asking its
                                           phone to answer by itself (``AUTO_ANSWER``
                                           headers), then end the first ring; the swap is
                                           not reported (the agent rings on)
    queue-transfer  id, to                 REFER the caller to ``to`` (overflow), then leave
    queue-hangup    id                     end the caller's call and the agent's leg

Events (``ev`` = ``queue``, ``state``): start, agent-ringing (id, agent), agent-answered
(id, agent), agent-ended (id, agent, code, answered), digit (id, digit), ended (id).
Callbacks (``queue-callback``) are ``drivers.media.callbacks``. A connected call ends
as a whole: either side hanging up ends the other, and a supervisor's leg on it
(``drivers.media.supervise``) with it. Runs on the worker's main thread only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pjsua2 as pj

from drivers.media.hangup import hang_up
from drivers.media.protocol import (
    Conference,
    Emit,
    Prompt,
    QueueAnnounce,
    QueueAnswer,
    QueueCancel,
    QueueCommand,
    QueueEvent,
    QueueHangup,
    QueueHold,
    QueueOffer,
    QueueTransfer,
)
from drivers.media.services import AGENT

if TYPE_CHECKING:
    from drivers.media.worker import Leg, Worker


_USER = re.compile(r"sip:([^@;>\s]+)@")
# Auto-answer as desk phones understand it: Call-Info answer-after (Yealink, Snom,
# Grandstream, Cisco SPA) and Alert-Info info=alert-autoanswer (Polycom).
AUTO_ANSWER = {"Call-Info": "<sip:{domain}>;answer-after=0",
               "Alert-Info": "<http://127.0.0.1/>;info=alert-autoanswer"}  # fmt: skip


class QueueLegs:
    """Queued callers of one worker (by SIP Call-ID) and the agent legs rung for them."""

    def __init__(self, worker: Worker, emit: Emit) -> None:
        self.worker = worker
        self.emit = emit
        self.callers: dict[str, Leg] = {}
        self.agents: dict[str, Leg] = {}
        self.offers: dict[str, dict[str, Leg]] = {}
        self.caller_numbers: dict[str, str] = {}
        self.hold: dict[str, Prompt] = {}
        self.bridged: set[str] = set()
        self.displays: dict[str, str] = {}
        self.replaced: list[Leg] = []

    def media(self, leg: Leg) -> None:
        """Audio is up: a new caller is reported; an agent who answered is bridged."""
        if leg.service == AGENT:
            self._bridge(leg)
            return
        info = leg.call.getInfo()
        key = info.callIdString
        if key in self.callers:
            return
        self.callers[key] = leg
        match = _USER.search(info.remoteUri)
        self.caller_numbers[key] = match.group(1) if match else ""
        self.emit(QueueEvent(key, "start", queue=leg.arg, caller=self.caller_numbers[key]))

    def command(self, cmd: QueueCommand) -> None:
        """Execute one ``queue-*`` command (a callback's is for ``CallbackLegs``); commands
        for calls that ended are ignored."""
        key = cmd.id
        leg = self.callers.get(key)
        if leg is None:
            return
        if isinstance(cmd, QueueHold):
            self.hold[key] = cmd.prompt
            self._music(key, leg)
        elif isinstance(cmd, QueueAnnounce) and key not in self.bridged and leg.audio is not None:
            self.worker.stop_source(leg)
            self.worker.play(leg, cmd.prompt, loop=False)
        elif isinstance(cmd, QueueOffer):
            self._offer(key, cmd.agent, cmd.display)
        elif isinstance(cmd, QueueAnswer):
            self._answer_on_desk(key, cmd.agent)
        elif isinstance(cmd, QueueCancel):
            self._cancel(key, cmd.agent)
        elif isinstance(cmd, QueueTransfer):
            self.bridged.add(key)
            self.worker.stop_source(leg)
            leg.refer_to = f"sip:{cmd.to}@{self.worker.config.domain}"
            leg.call.xfer(leg.refer_to, pj.CallOpParam(True))
        elif isinstance(cmd, QueueHangup):
            self._cancel(key, None)
            hang_up(self.agents.get(key))
            hang_up(leg)

    def digit(self, leg: Leg, digit: str) -> None:
        """A DTMF digit from a queued caller (pressing 1 asks for a callback)."""
        key = next((k for k, v in self.callers.items() if v is leg), None)
        if key is not None:
            self.emit(QueueEvent(state="digit", id=key, digit=digit))

    def played(self, leg: Leg) -> None:
        """An announcement (or a round of the music) ended: the music goes on."""
        key = next((k for k, v in self.callers.items() if v is leg), None)
        if key is not None and key not in self.bridged:
            self._music(key, leg)

    def agent_state(self, leg: Leg, state: int, code: int, reason: str) -> None:
        """Progress of an agent leg (tagged with its caller's Call-ID)."""
        key = leg.arg
        if state == pj.PJSIP_INV_STATE_EARLY:
            self.emit(QueueEvent(state="agent-ringing", id=key, agent=leg.tag or "", code=code))
        elif state == pj.PJSIP_INV_STATE_CONFIRMED:
            self._answered(key, leg)
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.worker.forget(leg.call.getId(), leg)
            if any(r is leg for r in self.replaced):
                self.replaced = [r for r in self.replaced if r is not leg]
                return
            if self.agents.get(key) is leg:
                del self.agents[key]
            self._unrung(key, leg)
            self.emit(QueueEvent(state="agent-ended", id=key, agent=leg.tag or "", code=code,
                                 reason=reason, answered=leg.answered))  # fmt: skip
            if leg.answered:
                hang_up(self.callers.get(key))

    def forget(self, leg: Leg) -> None:
        """A caller's call ended: end its agent leg and tell the appliance."""
        key = next((k for k, v in self.callers.items() if v is leg), None)
        if key is None:
            return
        del self.callers[key]
        self.caller_numbers.pop(key, None)
        self.hold.pop(key, None)
        self.displays.pop(key, None)
        self.bridged.discard(key)
        self._cancel(key, None)
        hang_up(self.agents.get(key))
        self.worker.call_ended(key)
        self.emit(QueueEvent(state="ended", id=key))

    def shutdown(self) -> None:
        """Drop every pjsua2 reference (before libDestroy)."""
        self.callers.clear()
        self.agents.clear()
        self.offers.clear()
        self.hold.clear()

    def _offer(self, key: str, agent: str, display: str) -> None:
        if key in self.agents or agent in self.offers.get(key, {}):
            self.emit(QueueEvent(state="agent-ended", id=key, agent=agent, code=409,
                                 reason="already-ringing", answered=False))  # fmt: skip
            return
        self.displays[key] = display
        placed = self._ring(key, agent, {})
        if placed is not None:
            self.offers.setdefault(key, {})[agent] = placed
        else:
            self.emit(QueueEvent(state="agent-ended", id=key, agent=agent, code=503,
                                 reason="worker-full", answered=False))  # fmt: skip

    def _ring(self, key: str, agent: str, headers: dict[str, str]) -> Leg | None:
        cmd = Conference(id=agent, to=agent, from_user=self.caller_numbers.get(key, ""),
                         display=self.displays.get(key, ""), room=key, headers=headers)  # fmt: skip
        return self.worker.originate(cmd, service=AGENT)

    def _answer_on_desk(self, key: str, agent: str) -> None:
        """Ring the agent again with auto-answer headers, then end the ring it replaces
        (without a free slot the first ring goes on)."""
        rung = self.offers.get(key, {})
        first = rung.get(agent)
        if first is None:
            return
        domain = self.worker.config.domain
        headers = {name: value.format(domain=domain) for name, value in AUTO_ANSWER.items()}
        placed = self._ring(key, agent, headers)
        if placed is None:
            return
        rung[agent] = placed
        self.replaced.append(first)
        hang_up(first)

    def _answered(self, key: str, leg: Leg) -> None:
        """The first agent to answer takes the caller; the others rung for it stop ringing,
        and one that answered too late is hung up (its leg ends unanswered)."""
        if key in self.agents or key not in self.callers or not self._unrung(key, leg):
            hang_up(leg)
            return
        leg.answered = True
        self.agents[key] = leg
        self.emit(QueueEvent(state="agent-answered", id=key, agent=leg.tag or ""))
        self._bridge(leg)
        self._cancel(key, None)

    def _unrung(self, key: str, leg: Leg) -> bool:
        """Takes ``leg`` out of the caller's agents being rung; False when it was not."""
        rung = self.offers.get(key, {})
        if rung.get(str(leg.tag)) is not leg:
            return False
        del rung[str(leg.tag)]
        if not rung:
            del self.offers[key]
        return True

    def _cancel(self, key: str, agent: str | None) -> None:
        """Stop ringing ``agent`` (None: every agent still being rung) for the caller."""
        for number, leg in list(self.offers.get(key, {}).items()):
            if agent is None or number == agent:
                hang_up(leg)

    def _bridge(self, agent: Leg) -> None:
        caller = self.callers.get(agent.arg)
        if self.agents.get(agent.arg) is not agent:
            return
        if caller is None or caller.audio is None or agent.audio is None:
            return
        self.bridged.add(agent.arg)
        self.worker.stop_source(caller)
        caller.deadline = None
        caller.audio.startTransmit(agent.audio)
        agent.audio.startTransmit(caller.audio)

    def _music(self, key: str, leg: Leg) -> None:
        self.worker.stop_source(leg)
        prompt = self.hold.get(key)
        if leg.audio is not None and prompt is not None:
            self.worker.play(leg, prompt, loop=True)
            leg.deadline = None
