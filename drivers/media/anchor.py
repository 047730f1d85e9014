"""The media worker's anchored calls: a call that went phone to phone through Kamailio
alone, taken over here so a supervisor or a third party can join it.

The worker dials both ends of the call with an INVITE carrying ``Replaces`` (RFC 3891)
of the dialog each end has: each phone accepts the new call in place of its old one and
sends BYE on the old dialog. Once both new legs have audio the worker bridges them and
the call is one this worker bridges, like a queue call, for ``drivers.media.supervise``
(``agents``, ``callers``, ``bridged``: the agent's leg and the other party's leg by the
anchor's id).

    anchor  id, agent, other, agent_replaces, other_replaces, headers
                        dial ``agent`` and ``other`` (each Replaces its own dialog,
                        presenting the agent, whose dial-plan rights apply) and bridge them

Events (``ev`` = ``anchor``): ``bridged`` (id, agent), ``ended`` (id, agent, code, reason,
bridged). When one leg ends (or is refused), the other is hung up and supervisors of the
call leave with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pjsua2 as pj

from drivers.media.protocol import AnchorCall, AnchorEvent, Conference
from drivers.media.services import ANCHOR

if TYPE_CHECKING:
    from drivers.media.protocol import Emit
    from drivers.media.worker import Leg, Worker

log = logging.getLogger("callmesh.media")


@dataclass
class Anchor:
    """One anchored call: the agent's leg and the other party's, both placed here."""

    key: str
    agent: str
    agent_leg: Leg
    other_leg: Leg | None = None
    ended: bool = False


class AnchorLegs:
    """Anchored calls of one worker by id; runs on the worker's main thread only."""

    def __init__(self, worker: Worker, emit: Emit) -> None:
        self.worker = worker
        self.emit = emit
        self.anchors: dict[str, Anchor] = {}
        self.agents: dict[str, Leg] = {}
        self.callers: dict[str, Leg] = {}
        self.bridged: set[str] = set()

    def command(self, cmd: AnchorCall) -> None:
        """Place both legs of an ``anchor`` command; one that cannot be placed ends it."""
        key, agent, other, headers = cmd.id, cmd.agent, cmd.other, cmd.headers
        agent_leg = self._dial(key, agent, agent, other, cmd.agent_replaces, headers)
        if agent_leg is None:
            self.emit(AnchorEvent(key, "ended", agent=agent, code=503, reason="worker-full"))
            return
        agent_leg.tag = agent
        anchor = self.anchors[key] = Anchor(key, agent, agent_leg)
        self.agents[key] = agent_leg
        anchor.other_leg = self._dial(key, other, agent, agent, cmd.other_replaces, headers)
        if anchor.other_leg is None:
            self._end(anchor, 503, "worker-full")
            return
        self.callers[key] = anchor.other_leg

    def state(self, leg: Leg, state: int, code: int, reason: str) -> None:
        """Progress of an anchored leg: the first to end ends the anchor."""
        if state == pj.PJSIP_INV_STATE_CONFIRMED:
            leg.answered = True
            self.media(leg)
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.worker.forget(leg.call.getId(), leg)
            anchor = self._anchor(leg)
            if anchor is not None:
                self._end(anchor, code, reason)

    def media(self, leg: Leg) -> None:
        """A leg's audio is up or it was answered: once both legs are both, bridge them
        and report it."""
        anchor = self._anchor(leg)
        if anchor is None or anchor.other_leg is None or anchor.key in self.bridged:
            return
        ours, theirs = anchor.agent_leg.audio, anchor.other_leg.audio
        answered = anchor.agent_leg.answered and anchor.other_leg.answered
        if ours is None or theirs is None or not answered:
            return
        ours.startTransmit(theirs)
        theirs.startTransmit(ours)
        self.bridged.add(anchor.key)
        self.emit(AnchorEvent(anchor.key, "bridged", agent=anchor.agent))
        self.worker.supervisors.anchored(anchor.key)

    def shutdown(self) -> None:
        """Drop every reference to the legs (before libDestroy)."""
        self.anchors.clear()
        self.agents.clear()
        self.callers.clear()
        self.bridged.clear()

    def _dial(self, key: str, to: str, presenting: str, display: str, replaces: str,
              headers: dict[str, str]) -> Leg | None:  # fmt: skip
        cmd = Conference(id=key, room="", to=to, from_user=presenting, display=display,
                         replaces=replaces, headers=headers)  # fmt: skip
        return self.worker.originate(cmd, service=ANCHOR)

    def _end(self, anchor: Anchor, code: int, reason: str) -> None:
        if anchor.ended:
            return
        anchor.ended = True
        bridged = anchor.key in self.bridged
        self.anchors.pop(anchor.key, None)
        self.agents.pop(anchor.key, None)
        self.callers.pop(anchor.key, None)
        self.bridged.discard(anchor.key)
        self.worker.call_ended(anchor.key)
        for leg in (anchor.agent_leg, anchor.other_leg):
            if leg is not None and self.worker.legs.get(leg.call.getId()) is leg:
                self._hang_up(leg)
        self.emit(AnchorEvent(anchor.key, "ended", agent=anchor.agent, code=code, reason=reason,
                              bridged=bridged))  # fmt: skip

    @staticmethod
    def _hang_up(leg: Leg) -> None:
        try:
            leg.call.hangup(pj.CallOpParam())
        except pj.Error as err:  # the leg ended meanwhile
            log.info("anchored leg already gone: %s", err.info())

    def _anchor(self, leg: Leg) -> Anchor | None:
        return next((a for a in self.anchors.values()
                     if leg is a.agent_leg or leg is a.other_leg), None)  # fmt: skip
