"""SupervisionService: supervisors join agents' queue calls to monitor, whisper or barge.

Theory of operation: a queue call is bridged by the media worker that holds the caller
(``drivers/media/queues.py``), so a supervisor's leg must land on that worker
(``drivers/media/supervise.py``). Two ways in, one permission check (``permit``):

- feature code (``*90<agent>`` monitor, ``*91`` whisper, ``*92`` barge): the routing
  chain's ``SupervisionDecider`` checks the caller's rights and answers with the worker's
  ``supervise-<agent>`` user; a refusal is spoken to the supervisor by a worker's
  ``announce-refusal-<error_id>`` (``appliance.contact.refusals``), or, while that prompt
  is not there, answered with a SIP error (403, 480, 486) named by the error id;
- API: the worker rings the supervisor's phone (``supervise-call``).

Either way a session waits (``calling``) until the worker reports the supervisor's audio
up (``start``); the service then sends ``supervise-join`` with the mode and the beep
policy. Digits 4, 5, 6 on the supervisor's phone (``digit``) or the API switch mode. The
worker ends the supervisor's leg with the agent's call; a supervisor hanging up leaves
the call as it was. Every join, switch, departure and refusal is a CTI event
(``supervisor.*``); the supervisor's own call's CDR carries ``supervised_*`` variables.
A session that never started lapses: after ``PENDING_S`` when the supervisor's phone
was rung, after ``ROUTED_S`` when a routed feature-code call never reached the worker.

A three-way (``three_way``: a CTI action of the agent) is a session of the same kind
without rights: the worker rings the number from the agent's extension and joins it in
``barge`` without a beep, so caller, agent and third party all hear each other; its CTI
events are ``call.party-joined`` and ``call.party-left``, and digits switch nothing. A
call holds one session at a time, supervisor or third party.

An agent's call that no worker bridges (a direct extension call, an outbound call) is
first anchored on a worker (``appliance.contact.anchoring``): the session waits in
``anchoring`` until the worker bridges the call (``anchored``), then rings as above; a
supervisor who dialled a feature code is routed at once to that worker (``;anchor=`` in
the request URI), which keeps it waiting until then. Rights are checked before anything moves: a
supervisor may join an agent's direct call when it may supervise a queue the agent
belongs to now, as a configured or a dynamic member (``queues``: the ACD's membership;
the session names that queue).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from appliance.contact.cti import CtiStream
from appliance.contact.settings import ContactSettings, QueueSettings
from appliance.contact.supervisors import (
    DIGIT_MODES,
    Beep,
    Mode,
    SupervisionError,
    permit,
)
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision
from drivers.media.protocol import (
    Command,
    Event,
    SuperviseCall,
    SuperviseEvent,
    SuperviseHangup,
    SuperviseJoin,
    SuperviseMode,
)

log = logging.getLogger(__name__)

PENDING_S = 60.0
ROUTED_S = 10.0
THREE_WAY = "three-way"
PARTY_EVENTS = {"joined": "call.party-joined", "left": "call.party-left"}
SIP_STATUS = {"not-a-supervisor": 403, "supervising-self": 403,
              "queue-not-permitted": 403, "agent-not-found": 404,
              "agent-logged-out": 480, "agent-not-on-call": 480,
              "already-supervised": 486, "media-workers-busy": 503}  # fmt: skip


class SupervisedWorker(Protocol):
    """What supervision needs of a media worker (``appliance.pbx.media.MediaWorker``)."""

    @property
    def address(self) -> str: ...

    def send(self, command: Command) -> bool: ...


@dataclass(frozen=True)
class Held:
    """An agent's queue call: the caller's Call-ID, its queue and the worker bridging it.

    An anchored direct call is held by its anchor's id, with no queue, and is ``ready``
    once the worker bridges it."""

    call_id: str
    queue: str
    worker: SupervisedWorker
    ready: bool = True


class DirectCalls(Protocol):
    """Agents' calls no worker bridges, moved onto one on demand (``Anchors``)."""

    def find(self, agent: str) -> object | None: ...

    def anchor(self, agent: str) -> Held | None: ...


class NoDirectCalls:
    """No anchoring: only queue calls can be supervised."""

    def find(self, agent: str) -> object | None:
        """Never a direct call."""
        return None

    def anchor(self, agent: str) -> Held | None:
        """Nothing to anchor."""
        return None


@dataclass
class Session:
    """One supervisor on one agent's call; ``key`` names it on the worker's control link."""

    key: str
    supervisor: str
    agent: str
    held: Held
    mode: Mode
    beep: Beep
    origin: str
    expires: float
    state: str = "calling"
    call_id: str = ""
    modes: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The session as a JSON-able document (API and CTI)."""
        return {"session": self.key, "supervisor": self.supervisor, "agent": self.agent,
                "queue": self.held.queue, "call": self.held.call_id, "mode": self.mode,
                "state": self.state, "origin": self.origin}  # fmt: skip


class SupervisionService:
    """Supervision sessions on the media workers; the one owner of their state."""

    def __init__(
        self,
        settings: ContactSettings,
        held: Callable[[str], Held | None],
        cti: CtiStream,
        annotate: Callable[[str, dict[str, str]], None],
        clock: Callable[[], float] = time.monotonic,
        agent_state: Callable[[str], str | None] | None = None,
        spoken: Callable[[str], str | None] = lambda _: None,
        direct: DirectCalls | None = None,
        queues: Callable[[], Mapping[str, QueueSettings]] | None = None,
    ) -> None:
        self.settings = settings
        self._queues = queues or (lambda: settings.queues)
        self.sessions: dict[str, Session] = {}
        self._held = held
        self._cti = cti
        self._annotate = annotate
        self._clock = clock
        configured = {a for q in settings.queues.values() for a in q.numbers}
        self._agent_state = agent_state or (lambda a: "available" if a in configured else None)
        self._spoken = spoken
        self._direct = direct or NoDirectCalls()
        self._serial = itertools.count(1)

    def route(self, query: RouteQuery) -> Decision | None:
        """The decision for a supervision feature code, or None when it is none."""
        parsed = self.settings.supervision.parse_code(query.dialled)
        if parsed is None:
            return None
        mode, agent = parsed
        try:
            session = self._admit(query.call_id, query.caller, agent, mode, "feature-code")
        except SupervisionError as err:
            return self._refusal(err.error_id)
        uri = f"sip:supervise-{agent}@{session.held.worker.address}"
        if not session.held.ready:  # the worker keeps the supervisor waiting for the anchor
            uri += f";anchor={session.held.call_id}"
        return Decision("media", uri=uri, route=f"supervise:{agent}", recording="never")

    def _refusal(self, error_id: str) -> Decision:
        """The refusal spoken by a worker, or the SIP error while it cannot be."""
        prompt = self._spoken(error_id)
        if prompt is None:
            return Decision("reject", code=SIP_STATUS[error_id], reason=error_id)
        return Decision("media", uri=f"announce-{prompt}", route=f"supervise-refused:{error_id}",
                        recording="never")  # fmt: skip

    def call(self, agent: str, supervisor: str, mode: Mode) -> Session:
        """Ring the supervisor's phone from the agent's worker; it joins once answered."""
        session = self._admit(f"sv-{next(self._serial)}", supervisor, agent, mode, "api")
        if session.state == "calling":
            self._ring(session)
        return session

    def anchored(self, key: str) -> None:
        """The worker bridges the anchored call ``key``: its waiting session rings now."""
        for session in list(self.sessions.values()):
            if session.held.call_id == key and session.state == "anchoring":
                session.state, session.expires = "calling", self._clock() + PENDING_S
                if session.origin != "feature-code":  # that one waits on the worker
                    self._ring(session)

    def anchor_ended(self, key: str, reason: str) -> None:
        """The anchored call ``key`` ended or could not be moved: its waiting session too."""
        for session in list(self.sessions.values()):
            if session.held.call_id == key and session.state == "anchoring":
                if session.origin == "feature-code":
                    session.held.worker.send(SuperviseHangup(session.key))
                self._left(session, f"anchor-{reason}", 0)

    def _ring(self, session: Session) -> None:
        """Have the worker bridging the call ring the supervisor or the third party."""
        display = (f"{session.held.queue}: {session.agent}" if session.origin == THREE_WAY
                   else f"{session.mode} {session.agent}")  # fmt: skip
        session.held.worker.send(SuperviseCall(session.key, session.agent, session.supervisor,
                                               display))  # fmt: skip

    def three_way(self, agent: str, number: str) -> Session:
        """Ring ``number`` from the agent's worker and join it to the agent's queue call."""
        self._expire()
        if self._agent_state(agent) is None:
            raise SupervisionError("agent-not-found", f"{agent} is no agent of any queue")
        held, queue = self._target(agent, None)
        if held is not None and any(s.held.call_id == held.call_id
                                    for s in self.sessions.values()):  # fmt: skip
            message = f"agent {agent}'s call has a supervisor or a third party"
            raise SupervisionError("already-supervised", message)
        if queue is None:
            raise SupervisionError("agent-not-on-call", f"agent {agent} is on no call")
        held = self._anchored(agent, held, queue)
        key = f"tw-{next(self._serial)}"
        session = Session(key, number, agent, held, "barge", "none", THREE_WAY,
                          self._clock() + PENDING_S,
                          "calling" if held.ready else "anchoring")  # fmt: skip
        self.sessions[key] = session
        if session.state == "calling":
            self._ring(session)
        return session

    def _target(self, agent: str, supervisor: str | None) -> tuple[Held | None, str | None]:
        """The agent's held call (None: a direct call not anchored yet) and the queue it
        is supervised as; no queue when the agent is on no call at all."""
        held = self._held(agent)
        if held is not None and held.queue:
            return held, held.queue
        if held is None and self._direct.find(agent) is None:
            return None, None
        return held, self._queue_for(agent, supervisor) or ""

    def _queue_for(self, agent: str, supervisor: str | None) -> str | None:
        """The agent's queue (static or dynamic member) the supervisor may supervise, else
        its first queue."""
        mine = [name for name, q in self._queues().items() if agent in q.numbers]
        rights = self.settings.supervisors.get(supervisor or "")
        allowed = [q for q in mine if rights is not None and q in rights.queues]
        return next(iter(allowed or mine), None)

    def _anchored(self, agent: str, held: Held | None, queue: str) -> Held:
        """The agent's call as held under ``queue``, anchoring a direct call first."""
        held = held or self._direct.anchor(agent)
        if held is None:
            raise SupervisionError("media-workers-busy", "no media worker can take the call")
        return dataclasses.replace(held, queue=queue)

    def switch(self, agent: str, mode: Mode) -> Session:
        """Change the mode of the session on ``agent``'s call."""
        session = next((s for s in self.sessions.values()
                        if s.agent == agent and s.origin != THREE_WAY), None)  # fmt: skip
        if session is None:
            raise SupervisionError("not-supervised", f"nobody supervises agent {agent}")
        if session.state != "joined":
            raise SupervisionError("not-joined", f"the supervisor of {agent} has not joined")
        self._switch(session, mode)
        return session

    def snapshot(self) -> dict[str, Any]:
        """Every session, joined or still calling."""
        self._expire()
        return {"sessions": [s.record() for s in self.sessions.values()]}

    def on_event(self, worker: SupervisedWorker, event: Event) -> None:
        """A ``supervise`` event of a media worker (other events are not supervision's)."""
        if not isinstance(event, SuperviseEvent):
            return
        state, key = event.state, event.id
        session = self.sessions.get(key)
        if state == "start":
            self._started(worker, key, session, event.call_id)
        elif state == "digit" and session is not None and session.state == "joined":
            self._digit(session, event.digit)
        elif state == "ended" and session is not None:
            self._left(session, event.reason or "hangup", event.code)

    def _digit(self, session: Session, digit: str) -> None:
        """A key on the supervisor's phone switches mode (a third party's switch nothing)."""
        mode = DIGIT_MODES.get(digit)
        if mode is not None and mode != session.mode and session.origin != THREE_WAY:
            self._switch(session, mode)

    def worker_lost(self, worker: SupervisedWorker) -> None:
        """A worker exited: its sessions are gone with its calls."""
        for session in list(self.sessions.values()):
            if session.held.worker is worker:
                self._left(session, "media-worker-restart", 0)

    def _admit(self, key: str, supervisor: str, agent: str, mode: Mode, origin: str) -> Session:
        self._expire()
        try:
            session = self._session(key, supervisor, agent, mode, origin)
        except SupervisionError as err:
            log.warning("supervision refused: %s", err,
                        extra={"error_id": err.error_id, "supervisor": supervisor,
                               "agent": agent})  # fmt: skip
            self._cti.publish("supervisor.refused", supervisor=supervisor, agent=agent,
                              mode=mode, error_id=err.error_id, message=str(err))  # fmt: skip
            raise
        self.sessions[key] = session
        return session

    def _session(self, key: str, supervisor: str, agent: str, mode: Mode,
                 origin: str) -> Session:  # fmt: skip
        state = self._agent_state(agent)
        if state is None:
            raise SupervisionError("agent-not-found", f"{agent} is no agent of any queue")
        held, queue = self._target(agent, supervisor)
        try:
            rights = permit(self.settings.supervisors, supervisor, agent, queue)
        except SupervisionError as err:
            if err.error_id == "agent-not-on-call" and state == "logged-out":
                raise SupervisionError("agent-logged-out", f"agent {agent} is logged out") from None
            raise
        assert queue is not None
        if held is not None and any(s.held.call_id == held.call_id
                                    for s in self.sessions.values()):  # fmt: skip
            raise SupervisionError("already-supervised", f"agent {agent}'s call is supervised")
        held = self._anchored(agent, held, queue)
        beep = self.settings.supervision.beep_for(rights)
        pending = ROUTED_S if origin != "api" and held.ready else PENDING_S
        return Session(key, supervisor, agent, held, mode, beep, origin, self._clock() + pending,
                       "calling" if held.ready else "anchoring")  # fmt: skip

    def _started(self, worker: SupervisedWorker, key: str, session: Session | None,
                 call_id: str) -> None:  # fmt: skip
        if session is None or session.state != "calling":
            log.warning("supervisor leg %s is no session: hung up", key,
                        extra={"error_id": "supervision-unknown"})  # fmt: skip
            worker.send(SuperviseHangup(key))
            return
        session.state, session.call_id = "joined", call_id
        session.modes.append(session.mode)
        worker.send(SuperviseJoin(key, session.mode, session.beep))
        log.info("supervisor %s joined agent %s (%s)", session.supervisor, session.agent,
                 session.mode, extra={"call_id": session.held.call_id})  # fmt: skip
        self._publish(session, "joined", beep=session.beep)
        self._note(session)

    def _switch(self, session: Session, mode: Mode) -> None:
        session.mode = mode
        session.modes.append(mode)
        session.held.worker.send(SuperviseMode(session.key, mode))
        self._cti.publish("supervisor.mode", **session.record())
        self._note(session)

    def _left(self, session: Session, reason: str, code: int) -> None:
        self.sessions.pop(session.key, None)
        joined = session.state == "joined"
        session.state = "left"
        log.info("supervisor %s left agent %s: %s", session.supervisor, session.agent, reason,
                 extra={"modes": ",".join(session.modes)})  # fmt: skip
        self._publish(session, "left", joined=joined, modes=session.modes, reason=reason,
                      code=code)  # fmt: skip

    def _publish(self, session: Session, what: str, **extra: Any) -> None:
        """``supervisor.<what>``, or ``call.party-<what>`` for a three-way's party."""
        if session.origin != THREE_WAY:
            self._cti.publish(f"supervisor.{what}", **session.record(), **extra)
            return
        self._cti.publish(PARTY_EVENTS[what], session=session.key, party=session.supervisor,
                          agent=session.agent, queue=session.held.queue,
                          call_id=session.held.call_id, **extra)  # fmt: skip

    def _note(self, session: Session) -> None:
        """The supervisor's own call's CDR says whom and how it supervised."""
        if session.origin == THREE_WAY:
            return
        self._annotate(session.call_id, {"supervised_agent": session.agent,
                                         "supervised_queue": session.held.queue,
                                         "supervised_call": session.held.call_id,
                                         "supervision_modes": ",".join(session.modes)})  # fmt: skip

    def _expire(self) -> None:
        now = self._clock()
        for session in list(self.sessions.values()):
            if session.state in ("calling", "anchoring") and now >= session.expires:
                self._left(session, "not-answered", 0)


class SupervisionDecider:
    """Sends a supervision feature code to the worker bridging the agent's call."""

    name = "contact-supervisors"
    # Supervision codes start with ``*``: never an extension's, a ring group's or an
    # outbound route's number; calls from trunks pass unchanged.
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(self, service: SupervisionService) -> None:
        self._service = service

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """A media decision (or a refusal) for a supervision code; anything else unchanged."""
        if decision is not None or query.from_peer or query.from_trunk:
            return decision
        return self._service.route(query) or decision
