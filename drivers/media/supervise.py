"""The media worker's supervisor legs: a supervisor joins an agent's queue call in the
conference bridge that already connects caller and agent: a caller the queue bridged
(``drivers.media.queues``) or a callback, agent leg and call back (``drivers.media.callbacks``).

A supervisor's leg reaches the worker bridging the agent's call in one of two ways: the
supervisor's phone dials a feature code and the appliance routes it to the user
``supervise-<agent>`` of this worker (refused with 480 when the worker bridges no call
for that agent, or one that is already supervised), or the appliance has the worker ring
the supervisor (``supervise-call``). Once the supervisor's audio is up the worker reports
``start`` and waits for ``supervise-join`` with the mode and beep the appliance decided:
until then the supervisor hears nothing and nobody hears it. Policy (who may, which
mode, which digit switches) is the appliance's; this module only wires ports.

    supervise-call    id, agent, to, display   ring ``to`` for the agent's call
    supervise-join    id, mode, beep           join in ``mode``; beep ``none|agent|both``
    supervise-mode    id, mode                 rewire for another mode
    supervise-hangup  id                       end the supervisor's leg (the call goes on)

Events (``ev`` = ``supervise``): ``start`` (id, call_id: the leg's SIP Call-ID, agent,
supervisor, call: the caller's Call-ID), ``digit`` (id, digit), ``ended`` (id, code,
reason, answered). ``id`` is the ``supervise-call`` id, or the leg's SIP Call-ID for a
leg that dialled in. When the agent's call ends the supervisor's leg is hung up.

A supervisor routed to a call the worker is still anchoring (``drivers.media.anchor``;
the request URI's ``anchor`` parameter) waits, hearing nothing, until the anchor bridges
the call (``anchored``), then starts as above; if the anchor ends first, it is hung up.

Wiring (``links``): caller and agent always hear each other; each mode adds the
supervisor's transmissions, and a mode switch only starts and stops the difference.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import pjsua2 as pj

from drivers.media.protocol import (
    Conference,
    SuperviseCall,
    SuperviseCommand,
    SuperviseEvent,
    SuperviseHangup,
    SuperviseJoin,
    SuperviseMode,
)
from drivers.media.services import SUPERVISOR

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from drivers.media.protocol import Emit
    from drivers.media.worker import Leg, Worker

log = logging.getLogger("callmesh.media")

BEEP_HZ = 1400
BEEP_MS = 400
Party = Literal["caller", "agent", "supervisor"]
Link = tuple[Party, Party]
_MONITOR: frozenset[Link] = frozenset({("caller", "supervisor"), ("agent", "supervisor")})
_TO_AGENT: frozenset[Link] = frozenset({("supervisor", "agent")})
_TO_CALLER: frozenset[Link] = frozenset({("supervisor", "caller")})
LINKS: dict[str, frozenset[Link]] = {
    "": frozenset(),
    "monitor": _MONITOR,
    "whisper": _MONITOR | _TO_AGENT,
    "barge": _MONITOR | _TO_AGENT | _TO_CALLER,
}
BEEP_TO: dict[str, tuple[Party, ...]] = {"none": (), "agent": ("agent",),
                                         "both": ("agent", "caller")}  # fmt: skip
_USER = re.compile(r"sip:([^@;>\s]+)@")


def links(mode: str) -> frozenset[Link]:
    """Who transmits to whom (besides caller and agent) in ``mode``; ``""``: not joined."""
    if mode not in LINKS:
        raise ValueError(f"unknown supervision mode {mode!r}")
    return LINKS[mode]


def rewire(old: str, new: str) -> tuple[set[Link], set[Link]]:
    """The transmissions to stop and to start to go from mode ``old`` to ``new``."""
    before, after = links(old), links(new)
    return set(before - after), set(after - before)


class Bridges(Protocol):
    """Calls a worker bridges, by the caller's Call-ID (``QueueLegs``, ``CallbackLegs``)."""

    @property
    def agents(self) -> dict[str, Leg]: ...

    @property
    def callers(self) -> dict[str, Leg]: ...

    @property
    def bridged(self) -> set[str]: ...


@dataclass
class Session:
    """One supervisor leg and the queue call (caller's Call-ID) it joins."""

    key: str
    leg: Leg
    call: str
    agent: str
    mode: str = ""
    beep: pj.ToneGenerator | None = None
    beeping: list[pj.AudioMedia] = field(default_factory=list)
    beep_until: float = 0.0


class SupervisorLegs:
    """Supervisor legs of one worker by ``id``; runs on the worker's main thread only."""

    def __init__(self, worker: Worker, bridges: Sequence[Bridges],
                 emit: Emit) -> None:  # fmt: skip
        self.worker = worker
        self.bridges = bridges
        self.emit = emit
        self.sessions: dict[str, Session] = {}
        self.parked: dict[str, tuple[Leg, str]] = {}

    def call_of(self, agent: str) -> str | None:
        """The Call-ID of the bridged call the agent answered here, if unsupervised."""
        for bridges in self.bridges:
            for key, leg in bridges.agents.items():
                if leg.tag == agent and leg.answered and key in bridges.bridged:
                    taken = any(s.call == key for s in self.sessions.values())
                    return None if taken else key
        return None

    def admits(self, agent: str) -> bool:
        """Whether a supervisor may dial in for ``agent`` now."""
        return self.call_of(agent) is not None

    def media(self, leg: Leg) -> None:
        """The supervisor's audio is up: report it and wait for ``supervise-join``."""
        info = leg.call.getInfo()
        session = self._session(leg) or self._dialled_in(leg, info.callIdString)
        if session is not None:
            self._start(session, info)

    def anchored(self, call: str) -> None:
        """The anchored call ``call`` is bridged: a supervisor waiting for it starts."""
        parked = self.parked.pop(call, None)
        if parked is None:
            return
        leg, key = parked
        leg.anchor = ""  # bridged now: a call taken meanwhile hangs the supervisor up
        session = self._dialled_in(leg, key)
        if session is not None:
            self._start(session, leg.call.getInfo())

    def _start(self, session: Session, info: pj.CallInfo) -> None:
        match = _USER.search(info.remoteUri)
        self.emit(SuperviseEvent(state="start", id=session.key, call_id=info.callIdString,
                                 agent=session.agent, supervisor=match.group(1) if match else "",
                                 call=session.call))  # fmt: skip

    def command(self, cmd: SuperviseCommand) -> None:
        """Execute one ``supervise-*`` command; commands for ended legs are ignored."""
        key = cmd.id
        if isinstance(cmd, SuperviseCall):
            self._call(key, cmd.agent, cmd.to, cmd.display)
            return
        session = self.sessions.get(key)
        if session is None:
            if isinstance(cmd, SuperviseHangup):
                self._unpark(lambda parked_key: parked_key == key)
            return
        if isinstance(cmd, SuperviseJoin):
            self._rewire(session, cmd.mode)
            self._beep(session, cmd.beep)
        elif isinstance(cmd, SuperviseMode) and session.mode:
            self._rewire(session, cmd.mode)
        elif isinstance(cmd, SuperviseHangup):
            session.leg.call.hangup(pj.CallOpParam())

    def state(self, leg: Leg, state: int, code: int, reason: str) -> None:
        """Progress of a supervisor leg; an ended one leaves the call as it was."""
        if state == pj.PJSIP_INV_STATE_CONFIRMED:
            leg.answered = True
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.worker.forget(leg.call.getId(), leg)
            session = self._session(leg)
            if session is None:
                self._left_parked(leg, code, reason)
                return
            del self.sessions[session.key]
            self._stop_beep(session)
            self.emit(SuperviseEvent(state="ended", id=session.key, code=code, reason=reason,
                                     answered=leg.answered))  # fmt: skip

    def digit(self, leg: Leg, digit: str) -> None:
        """A key the supervisor pressed: the appliance decides what it means."""
        session = self._session(leg)
        if session is not None:
            self.emit(SuperviseEvent(state="digit", id=session.key, digit=digit))

    def call_ended(self, call: str) -> None:
        """The bridged call ``call`` ended: its supervisor's leg ends too."""
        parked = self.parked.pop(call, None)
        if parked is not None:
            parked[0].call.hangup(pj.CallOpParam())
        for session in list(self.sessions.values()):
            if session.call == call:
                self._stop_beep(session)
                session.leg.call.hangup(pj.CallOpParam())

    def tick(self, now: float) -> None:
        """End beeps that played their time."""
        for session in self.sessions.values():
            if session.beep is not None and now >= session.beep_until:
                self._stop_beep(session)

    def shutdown(self) -> None:
        """Drop every pjsua2 reference (before libDestroy)."""
        for session in self.sessions.values():
            session.beep = None
            session.beeping.clear()
        self.sessions.clear()

    def _left_parked(self, leg: Leg, code: int, reason: str) -> None:
        """A supervisor who hung up while waiting for the anchor."""
        for call, (parked, key) in list(self.parked.items()):
            if parked is leg:
                del self.parked[call]
                self.emit(SuperviseEvent(key, "ended", code=code, reason=reason,
                                         answered=leg.answered))  # fmt: skip

    def _unpark(self, match: Callable[[str], bool]) -> None:
        for call, (leg, key) in list(self.parked.items()):
            if match(key):
                del self.parked[call]
                leg.call.hangup(pj.CallOpParam())

    def _dialled_in(self, leg: Leg, key: str) -> Session | None:
        """A session for a supervisor who dialled in, unless the call ended meanwhile; a
        supervisor for a call still being anchored waits (``parked``)."""
        call = self.call_of(leg.arg)
        if call is None and leg.anchor and leg.tag is None and leg.anchor not in self.parked:
            self.parked[leg.anchor] = (leg, key)
            return None
        if leg.tag is not None or call is None:
            leg.call.hangup(pj.CallOpParam())
            return None
        self.sessions[key] = Session(key, leg, call, leg.arg)
        return self.sessions[key]

    def _call(self, key: str, agent: str, to: str, display: str) -> None:
        call = self.call_of(agent)
        if call is None:
            self.emit(SuperviseEvent(state="ended", id=key, code=480,
                                     reason="agent-not-on-call", answered=False))  # fmt: skip
            return
        cmd = Conference(id=key, to=to, from_user=agent, display=display, room=agent)
        placed = self.worker.originate(cmd, service=SUPERVISOR)
        if placed is None:
            self.emit(SuperviseEvent(state="ended", id=key, code=503, reason="worker-full",
                                     answered=False))  # fmt: skip
            return
        self.sessions[key] = Session(key, placed, call, agent)

    def _ports(self, session: Session) -> dict[Party, pj.AudioMedia] | None:
        holder = next((b for b in self.bridges if session.call in b.bridged), None)
        if holder is None:
            return None
        caller = holder.callers.get(session.call)
        agent = holder.agents.get(session.call)
        if caller is None or agent is None:
            return None
        if caller.audio is None or agent.audio is None or session.leg.audio is None:
            return None
        return {"caller": caller.audio, "agent": agent.audio, "supervisor": session.leg.audio}

    def _rewire(self, session: Session, mode: str) -> None:
        stop, start = rewire(session.mode, mode)
        ports = self._ports(session)
        if ports is None:
            return
        for source, sink in stop:
            ports[source].stopTransmit(ports[sink])
        for source, sink in start:
            ports[source].startTransmit(ports[sink])
        session.mode = mode

    def _beep(self, session: Session, beep: str) -> None:
        ports = self._ports(session)
        targets = BEEP_TO.get(beep, ())
        if ports is None or not targets:
            return
        tone = pj.ToneGenerator()
        tone.createToneGenerator(8000, 1)
        desc = pj.ToneDesc()
        desc.freq1 = desc.freq2 = BEEP_HZ
        desc.on_msec, desc.off_msec = BEEP_MS, 0
        descs = pj.ToneDescVector()
        descs.append(desc)
        tone.play(descs, False)
        session.beeping = [ports[party] for party in targets]
        for sink in session.beeping:
            tone.startTransmit(sink)
        session.beep, session.beep_until = tone, time.monotonic() + BEEP_MS / 1000 + 0.1

    def _stop_beep(self, session: Session) -> None:
        if session.beep is not None:
            for sink in session.beeping:
                try:
                    session.beep.stopTransmit(sink)
                except pj.Error as err:  # the sink's call ended and took its port with it
                    log.debug("beep already disconnected: %s", err.info())
        session.beep = None
        session.beeping = []

    def _session(self, leg: Leg) -> Session | None:
        return next((s for s in self.sessions.values() if s.leg is leg), None)
