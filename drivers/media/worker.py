"""One pjsua2 media worker process: the calls that need a media endpoint.

Run as ``python -m drivers.media.worker CONFIG.json`` by the appliance's media pool.
The worker's SIP listens on loopback and takes calls only from Kamailio's loopback socket
(``WorkerConfig.proxy_address``, compared with each INVITE's source address and port);
any other caller gets 403, so nothing reaches a service or a modem without Kamailio's
authentication, routing and CDRs. Kamailio routes calls to the worker by request user:

    announce-<prompt>   play the prompt, then hang up
    ivr-<flow>          an IVR flow: the appliance's flow engine decides, the worker's IVR
                        handler plays, gathers digits, records and transfers (drivers.media.ivr)
    queue-<name>        an ACD queue: the caller hears music until the appliance's ACD has
                        the worker ring an agent and bridge the two (drivers.media.queues)
    supervise-<agent>   a supervisor joins the agent's queue call bridged here: monitor,
                        whisper or barge (drivers.media.supervise)
    echo                send the caller's audio back (echo test)
    room-<name>         meet-me conference room: everyone in it hears everyone else; a
                        room spanning workers is linked to the others (drivers.media.rooms)
    <number>;gsm=<ch>   (URI parameter) a call out through GSM channel <ch> (drivers.media.gsm)

and the appliance asks it (commands on stdin, see ``drivers.media.protocol``) to place
calls: click-to-dial origination and conference legs. Every outgoing call goes through
Kamailio, so CDRs, recording and class of service apply to it like any other call.

Each service's handler (GSM, IVR, room links, queues, callbacks, anchors, supervisors) is
imported and built the first time a call or command for it arrives (the ``Worker``
properties of the same names): most workers serve a few services, and every handler
loaded at start cost each worker's memory.

Threads: ``threadCnt=0`` with ``mainThreadOnly``, so SIP callbacks run inside
``libHandleEvents`` on the main thread. Callbacks only record what happened; the actions
(answer, hang up, connect audio, drop references) run from the main loop afterwards,
because hanging up or releasing a call inside its own callback is unsafe in pjsua2.
Media callbacks of players and tone generators run on the conference clock thread and
only set flags.
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import re
import select
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import pjsua2 as pj

from drivers.media.protocol import (
    AnchorCall,
    Command,
    Conference,
    ErrorEvent,
    Event,
    GsmCommand,
    Hangup,
    IvrCommand,
    LegEvent,
    Load,
    Originate,
    Prompt,
    ProtocolError,
    QueueCallback,
    QueueCancel,
    QueueCommand,
    QueueHangup,
    Quit,
    Ready,
    RoomCommand,
    RoomEvent,
    SuperviseCommand,
    TransferEvent,
    WorkerConfig,
    pack_event,
    parse_command,
)
from drivers.media.services import (
    AGENT,
    AGENT_LEG,
    ANCHOR,
    CALLER_LEG,
    GSM_URI,
    SUPERVISOR,
)

if TYPE_CHECKING:
    from drivers.media.anchor import AnchorLegs
    from drivers.media.callbacks import CallbackLegs
    from drivers.media.gsm import GsmLegs, ModemAudioPort
    from drivers.media.ivr import IvrLegs
    from drivers.media.queues import QueueLegs
    from drivers.media.rooms import RoomLink, RoomLinks
    from drivers.media.supervise import Bridges, SupervisorLegs

log = logging.getLogger("callmesh.media")

_REQUEST_USER = re.compile(r"^INVITE sip:([^@;>\s]+)@", re.MULTILINE)
# A supervisor routed to a call the appliance is anchoring here (drivers.media.anchor).
_ANCHOR = re.compile(
    r"^INVITE sip:[^@;>\s]+@[^;>\s]+;anchor=(an-[0-9a-f]{1,32})[;\s]", re.MULTILINE
)
_SERVICE = re.compile(r"^(announce|ivr|room|queue|supervise)-([a-z0-9][a-z0-9_-]{0,31})$|^(echo)$")
# The handler a first call of these services needs is built before the call is answered, so
# its time goes into call set-up and the caller's music or prompt starts with the audio.
_BUILT_BEFORE_ANSWER = {"queue": "queues", "ivr": "ivr"}
POLL_MS = 10
# Handlers shut down in this order (the GSM links first: their modems' calls end).
SHUTDOWN_ORDER = ("gsm", "ivr", "supervisors", "queues", "callbacks", "anchors", "links")
DRAIN_S = 0.5


class Handler(Protocol):
    """What the worker asks of every service handler besides its service's calls."""

    def shutdown(self) -> None:
        """Drop every pjsua2 object the handler holds."""


H = TypeVar("H", bound=Handler)


def emit(event: Event) -> None:
    """Write one event line to stdout."""
    sys.stdout.write(pack_event(event))
    sys.stdout.flush()


class Player(pj.AudioMediaPlayer):
    """A WAV player that notes the end of the file (on the conference clock thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.finished = False

    def onEof2(self) -> None:
        self.finished = True


def make_source(prompt: Prompt, loop: bool) -> pj.AudioMedia:
    """A player for the prompt's file, or a tone generator."""
    if prompt.file:
        player = Player()
        player.createPlayer(prompt.file, 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
        return player
    tone = pj.ToneGenerator()
    tone.createToneGenerator(8000, 1)
    desc = pj.ToneDesc()
    desc.freq1 = desc.freq2 = prompt.tone_hz
    desc.on_msec = prompt.on_ms
    desc.off_msec = prompt.off_ms
    descs = pj.ToneDescVector()
    descs.append(desc)
    tone.play(descs, True)
    return tone


@dataclass
class Leg:
    """What the worker knows about one call besides the pjsua2 object."""

    call: Call
    service: str
    arg: str = ""
    tag: str | None = None
    refer_to: str = ""
    source: pj.AudioMedia | None = None
    audio: pj.AudioMedia | None = None
    deadline: float | None = None
    answered: bool = False
    port: ModemAudioPort | None = None
    voice: tuple[str, int] | None = None
    outgoing: bool = False
    lost: bool = False
    anchor: str = ""


class Call(pj.Call):
    """A pjsua2 call whose callbacks queue work for the worker's main loop."""

    def __init__(self, worker: Worker, acc: pj.Account, call_id: int = pj.PJSUA_INVALID_ID):
        super().__init__(acc, call_id)
        self.worker = worker

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        self.worker.later(lambda: self.worker.state(self, info.state, info.lastStatusCode,
                                                    info.lastReason))  # fmt: skip

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        self.worker.later(lambda: self.worker.media(self))

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        digit = prm.digit
        self.worker.later(lambda: self.worker.digit(self, digit))

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        code, final = prm.statusCode, prm.finalNotify
        self.worker.later(lambda: self.worker.transfer_status(self, code, final))


class Account(pj.Account):
    """The worker's one account: no registration, every outgoing call via Kamailio."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = Call(self.worker, self, prm.callId)
        source = prm.rdata.srcAddress
        if source != self.worker.config.proxy_address:
            # Answered from the main loop: the queued action keeps ``call`` referenced, so
            # its destructor cannot decline the call (603) before the 403 goes out.
            self.worker.later(lambda: self.worker.refuse(call, source))
            return
        gsm = GSM_URI.search(prm.rdata.wholeMsg)
        if gsm is not None:
            self.worker.later(lambda: self.worker.gsm.incoming(call, gsm.group(1), gsm.group(2)))
            return
        match = _REQUEST_USER.search(prm.rdata.wholeMsg)
        anchor = _ANCHOR.search(prm.rdata.wholeMsg)
        self.worker.incoming(call, match.group(1) if match else "",
                             anchor.group(1) if anchor else "")  # fmt: skip


class Worker:
    """The worker's state and actions; every method runs on the main thread."""

    def __init__(self, config: WorkerConfig, ep: pj.Endpoint) -> None:
        self.config = config
        self.ep = ep
        self.acc = Account(self)
        self.legs: dict[int, Leg] = {}
        self.rooms: dict[str, list[Leg | RoomLink]] = {}
        self._queue: deque[Callable[[], None]] = deque()
        # The service handlers below are built on first use; these note the ones built.
        self._handlers: dict[str, Handler] = {}
        self._ticks: list[Callable[[float], None]] = []
        self._bridges: list[Bridges] = []
        acc_cfg = pj.AccountConfig()
        acc_cfg.idUri = f"sip:media-{config.name}@{config.domain}"
        acc_cfg.sipConfig.proxies.append(f"sip:{config.proxy_host}:{config.proxy_port};lr")
        acc_cfg.mediaConfig.transportConfig.boundAddress = config.media_host
        self.acc.create(acc_cfg)

    # -- service handlers: each is imported and built when the first call or command for
    # it arrives, so a worker holds only the code of the services it serves.

    @cached_property
    def gsm(self) -> GsmLegs:
        """GSM legs (``<number>;gsm=<channel>`` calls and ``gsm-*`` commands)."""
        started = time.perf_counter()
        from drivers.media.gsm import GsmLegs

        legs = self._built("gsm", GsmLegs(self, emit), started)
        self._ticks.append(lambda _now: legs.tick())
        return legs

    @cached_property
    def ivr(self) -> IvrLegs:
        """IVR calls (``ivr-<flow>``, IVR originations and ``ivr-*`` commands)."""
        started = time.perf_counter()
        from drivers.media.ivr import IvrLegs

        legs = self._built("ivr", IvrLegs(self, emit), started)
        self._ticks.append(legs.tick)
        return legs

    @cached_property
    def queues(self) -> QueueLegs:
        """Queued callers and the agents rung for them (``queue-<name>``, ``queue-*``)."""
        started = time.perf_counter()
        from drivers.media.queues import QueueLegs

        legs = self._built("queues", QueueLegs(self, emit), started)
        self._bridges.append(legs)
        return legs

    @cached_property
    def callbacks(self) -> CallbackLegs:
        """Callbacks' agent and caller legs (``queue-callback``)."""
        started = time.perf_counter()
        from drivers.media.callbacks import CallbackLegs

        legs = self._built("callbacks", CallbackLegs(self, emit), started)
        self._bridges.append(legs)
        return legs

    @cached_property
    def anchors(self) -> AnchorLegs:
        """Calls anchored here for supervision (``anchor``)."""
        started = time.perf_counter()
        from drivers.media.anchor import AnchorLegs

        legs = self._built("anchors", AnchorLegs(self, emit), started)
        self._bridges.append(legs)
        return legs

    @cached_property
    def supervisors(self) -> SupervisorLegs:
        """Supervisors' legs (``supervise-<agent>``, ``supervise-*``) on the calls bridged
        by the queue, callback and anchor handlers built so far (``_bridges`` grows)."""
        started = time.perf_counter()
        from drivers.media.supervise import SupervisorLegs

        legs = self._built("supervisors", SupervisorLegs(self, self._bridges, emit), started)
        self._ticks.append(legs.tick)
        return legs

    @cached_property
    def links(self) -> RoomLinks:
        """Links between workers' bridges of one meet-me room (``room-link``)."""
        started = time.perf_counter()
        from drivers.media.rooms import RoomLinks

        links = RoomLinks(self.config.host, self.config.jitter_frames, self._link_joined,
                          self._link_left, emit)  # fmt: skip
        return self._built("links", links, started)

    def _built(self, name: str, handler: H, started: float) -> H:
        self._handlers[name] = handler
        log.info("%s handler loaded in %.1f ms", name, (time.perf_counter() - started) * 1000)
        return handler

    def _has(self, name: str) -> bool:
        return name in self._handlers

    def call_ended(self, call: str) -> None:
        """A bridged call ended: supervisors on it (if any were ever here) leave."""
        if self._has("supervisors"):
            self.supervisors.call_ended(call)

    def later(self, action: Callable[[], None]) -> None:
        """Queue an action for the main loop (callbacks must not act themselves)."""
        self._queue.append(action)

    def run_queue(self) -> None:
        """Run the queued actions; an action failing on a call that ended is logged only."""
        while self._queue:
            action = self._queue.popleft()
            try:
                action()
            except pj.Error as err:
                log.warning("pjsua2: %s", err.info())

    def load(self) -> None:
        """Report how many calls the worker holds."""
        emit(Load(calls=len(self.legs), capacity=self.config.max_calls))

    def new_leg(self, call: Call, service: str, arg: str) -> Leg:
        """Register a leg for ``call`` and report the load."""
        leg = Leg(call, service, arg)
        self.legs[call.getId()] = leg
        self.load()
        return leg

    def make_call(self) -> Call:
        """A new outgoing call object on the worker's account."""
        return Call(self, self.acc)

    def forget(self, call_id: int, leg: Leg) -> None:
        """Drop a leg and everything it holds in the bridge."""
        self._forget(call_id, leg)

    def refuse(self, call: Call, source: str) -> None:
        """403 for a call that did not come from Kamailio: it would bypass auth and CDRs."""
        log.warning("INVITE from %s refused: only Kamailio at %s may call this worker",
                    source, self.config.proxy_address)  # fmt: skip
        prm = pj.CallOpParam()
        prm.statusCode = 403
        prm.reason = "Forbidden: not from the local Kamailio"
        try:
            call.answer(prm)
        except pj.Error as err:
            log.warning("refusal failed: %s", err.info())

    def incoming(self, call: Call, user: str, anchor: str = "") -> None:
        """A new call from Kamailio: serve it, or refuse it with a SIP status; ``anchor``:
        the anchored call a supervisor's leg waits for."""
        match = _SERVICE.match(user)
        prm = pj.CallOpParam()
        if len(self.legs) >= self.config.max_calls:
            prm.statusCode = 486
        elif match is None:
            prm.statusCode = 404
        else:
            service, arg = (match.group(1), match.group(2)) if match.group(1) else ("echo", "")
            if service == "announce" and arg not in self.config.prompts:
                prm.statusCode = 404
            elif service == SUPERVISOR and not (anchor or self.supervisors.admits(arg)):
                prm.statusCode = 480
            else:
                leg = self.legs[call.getId()] = Leg(call, service, arg, anchor=anchor)
                self.load()
                self._room_changed(leg, call.getInfo().callIdString)
                if service in _BUILT_BEFORE_ANSWER:
                    getattr(self, _BUILT_BEFORE_ANSWER[service])
                prm.statusCode = 200
        try:
            call.answer(prm)
        except pj.Error as err:
            log.warning("answer failed: %s", err.info())
            refused = self.legs.pop(call.getId(), None)
            if refused is not None:
                self._room_changed(refused, "")

    def originate(self, cmd: Originate | Conference, service: str) -> Leg | None:
        """Place a call through Kamailio (click-to-dial, a conference leg, a wake-up call);
        its leg, or None when it could not be placed (reported as an ended ``leg``).

        The call presents ``from_user`` (whose dial plan rights apply) with ``display``;
        with ``ivr`` (a flow name) the answered call is reported and driven as an IVR call.
        """
        tag, to = cmd.id, cmd.to
        if len(self.legs) >= self.config.max_calls:
            emit(LegEvent(id=tag, state="ended", code=486, reason="worker-full"))
            return None
        call = Call(self, self.acc)
        prm = pj.CallOpParam(True)
        display = cmd.display.replace('"', "")
        user = cmd.from_user or f"media-{self.config.name}"
        prm.txOption.localUri = f'"{display}" <sip:{user}@{self.config.domain}>'
        headers = dict(cmd.headers)
        if isinstance(cmd, Conference) and cmd.replaces:
            headers["Replaces"] = cmd.replaces
        for name, value in headers.items():
            header = pj.SipHeader()
            header.hName, header.hValue = name, value
            prm.txOption.headers.append(header)
        arg, refer_to = (cmd.room, "") if isinstance(cmd, Conference) else ("", cmd.refer_to)
        if isinstance(cmd, Originate) and cmd.ivr:
            # the appliance drives the answered call as an IVR (wake-up calls)
            service, arg = "ivr", cmd.ivr
        leg = Leg(call, service, arg, tag, refer_to)
        try:
            call.makeCall(f"sip:{to}@{self.config.domain}", prm)
        except pj.Error as err:
            emit(LegEvent(id=tag, state="ended", code=500, reason=err.reason))
            return None
        self.legs[call.getId()] = leg
        self.load()
        return leg

    def hangup(self, tag: str) -> None:
        """End every leg placed for ``tag`` (conference legs are tagged ``<tag>/<number>``)."""
        for leg in list(self.legs.values()):
            if leg.tag is not None and (leg.tag == tag or leg.tag.startswith(tag + "/")):
                leg.call.hangup(pj.CallOpParam())

    def state(self, call: Call, state: int, code: int, reason: str) -> None:
        """A call changed state: report it, start services, forget ended calls."""
        leg = self.legs.get(call.getId())
        if leg is None or leg.call is not call:
            return
        if leg.service == "gsm":
            self.gsm.state(leg, state, code, reason)
        elif leg.service == AGENT:
            self.queues.agent_state(leg, state, code, reason)
        elif leg.service in (AGENT_LEG, CALLER_LEG):
            self.callbacks.state(leg, state, code, reason)
        elif leg.service == SUPERVISOR:
            self.supervisors.state(leg, state, code, reason)
        elif leg.service == ANCHOR:
            self.anchors.state(leg, state, code, reason)
        elif state == pj.PJSIP_INV_STATE_EARLY and leg.tag:
            emit(LegEvent(id=leg.tag, state="ringing", code=code))
        elif state == pj.PJSIP_INV_STATE_CONFIRMED:
            leg.answered = True
            if leg.tag:
                emit(LegEvent(id=leg.tag, state="answered", code=code))
            if leg.service == "originate" and leg.refer_to:
                call.xfer(leg.refer_to, pj.CallOpParam(True))
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # The owner of a tagged leg (a wake-up call waiting for its outcome) must hear
            # that it ended even if tearing its media down failed.
            try:
                self._forget(call.getId(), leg)
            finally:
                if leg.tag:
                    emit(LegEvent(id=leg.tag, state="ended", code=code, reason=reason,
                         answered=leg.answered))  # fmt: skip

    def media(self, call: Call) -> None:
        """Media became active (or changed): connect the leg's audio for its service."""
        leg = self.legs.get(call.getId())
        if leg is None or leg.call is not call or leg.audio is not None:
            return
        info = call.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                leg.audio = call.getAudioMedia(index)
                break
        if leg.audio is None:
            return
        if leg.service == "gsm":
            self.gsm.media(leg)
        elif leg.service == "announce":
            self.play(leg, self.config.prompts[leg.arg], loop=False)
        elif leg.service == "ivr":
            self.ivr.media(leg)
        elif leg.service in ("queue", AGENT):
            self.queues.media(leg)
        elif leg.service in (AGENT_LEG, CALLER_LEG):
            self.callbacks.media(leg)
        elif leg.service == SUPERVISOR:
            self.supervisors.media(leg)
        elif leg.service == ANCHOR:
            self.anchors.media(leg)
        elif leg.service == "echo":
            leg.audio.startTransmit(leg.audio)
        elif leg.service in ("room", "conference"):
            self._join(leg)

    def digit(self, call: Call, digit: str) -> None:
        """A DTMF digit: GSM legs pass it on, IVR and queued callers' legs report it to the
        appliance."""
        leg = self.legs.get(call.getId())
        if leg is not None and leg.service == "gsm":
            self.gsm.digit(leg, digit)
        elif leg is not None and leg.service == "ivr":
            self.ivr.digit(leg, digit)
        elif leg is not None and leg.service == "queue":
            self.queues.digit(leg, digit)
        elif leg is not None and leg.service == SUPERVISOR:
            self.supervisors.digit(leg, digit)

    def transfer_status(self, call: Call, code: int, final: bool) -> None:
        """Progress of a REFER we sent: leave the call once the transfer target answered."""
        leg = self.legs.get(call.getId())
        if leg is None:
            return
        if leg.tag:
            emit(TransferEvent(id=leg.tag, code=code, final=final))
        if final:
            call.hangup(pj.CallOpParam())

    def tick(self, now: float) -> None:
        """Deadlines: announcements and IVR prompts end, players reach their end."""
        for tick in self._ticks:
            tick(now)
        for leg in list(self.legs.values()):
            finished = isinstance(leg.source, Player) and leg.source.finished
            if finished or (leg.deadline is not None and now >= leg.deadline):
                leg.deadline = None
                if isinstance(leg.source, Player):
                    leg.source.finished = False
                self._expired(leg)

    def _expired(self, leg: Leg) -> None:
        if leg.service == "announce":
            leg.call.hangup(pj.CallOpParam())
        elif leg.service == "ivr":
            self.ivr.played(leg)
        elif leg.service == "queue":
            self.queues.played(leg)
        elif leg.service in (AGENT_LEG, CALLER_LEG):
            self.callbacks.expired(leg)

    def play(self, leg: Leg, prompt: Prompt, loop: bool) -> None:
        """Play ``prompt`` to the leg; a tone's end is its ``seconds`` (the leg's deadline)."""
        assert leg.audio is not None
        leg.source = make_source(prompt, loop)
        leg.source.startTransmit(leg.audio)
        if not prompt.file:
            leg.deadline = time.monotonic() + prompt.seconds

    def stop_source(self, leg: Leg) -> None:
        """Stop what plays to the leg (nothing to stop once the call's media is gone)."""
        source, leg.source = leg.source, None
        if source is None or leg.audio is None:
            return
        try:
            source.stopTransmit(leg.audio)
        except pj.Error as err:
            # A call that ended may have left the bridge already (PJ_EINVAL): its port and
            # with it the transmission are gone, which is what stopping asked for.
            log.info("prompt already stopped with its call's media: %s", err.info())

    def _join(self, leg: Leg) -> None:
        self._connect(_room_key(leg), leg)

    def _connect(self, room: str, member: Leg | RoomLink) -> None:
        members = self.rooms.setdefault(room, [])
        assert member.audio is not None
        for other in members:
            if other.audio is not None:
                member.audio.startTransmit(other.audio)
                other.audio.startTransmit(member.audio)
        members.append(member)

    def _disconnect(self, room: str, member: Leg | RoomLink) -> None:
        members = self.rooms.get(room)
        if members is not None and member in members:
            members.remove(member)
            if not members:
                del self.rooms[room]

    def _link_joined(self, room: str, link: RoomLink) -> None:
        self._connect(_meet_me(room), link)

    def _link_left(self, room: str, link: RoomLink) -> None:
        self._disconnect(_meet_me(room), link)

    def _room_changed(self, leg: Leg, call_id: str) -> None:
        """Tell the appliance how many calls a meet-me room holds here now."""
        if leg.service == "room":
            members = sum(1 for other in self.legs.values()
                          if other.service == "room" and other.arg == leg.arg)  # fmt: skip
            emit(RoomEvent(room=leg.arg, members=members, call_id=call_id))

    def _forget(self, call_id: int, leg: Leg) -> None:
        self.legs.pop(call_id, None)
        self._disconnect(_room_key(leg), leg)
        if leg.service == "ivr":
            self.ivr.forget(leg)
        elif leg.service == "queue":
            self.queues.forget(leg)
        self.stop_source(leg)
        if leg.service == "gsm":
            self.gsm.forget(leg)
        leg.audio = None
        self.load()
        self._room_changed(leg, "")

    def _queue_command(self, cmd: QueueCommand) -> None:
        """Queued callers' commands to their handler, callbacks' to theirs; cancel and
        hang-up to both, if callbacks were ever placed here (each ignores calls it does not
        hold)."""
        if not isinstance(cmd, QueueCallback):
            self.queues.command(cmd)
        if isinstance(cmd, QueueCallback) or (
            isinstance(cmd, (QueueCancel, QueueHangup)) and self._has("callbacks")
        ):
            self.callbacks.command(cmd)

    def command(self, line: str) -> bool:
        """Apply one command line; returns False on ``quit``. A line that is no valid
        command is answered with an ``error`` event carrying its ``error_id``."""
        try:
            cmd = parse_command(line)
        except ProtocolError as err:
            log.warning("bad command (%s): %s", err.error_id, err)
            emit(ErrorEvent(id=None, message=f"bad command: {err}", error_id=err.error_id))
            return True
        if isinstance(cmd, Quit):
            return False
        try:
            self._apply(cmd)
        except (KeyError, TypeError, ValueError) as err:
            emit(ErrorEvent(id=None, message=f"bad command: {err}"))
        except pj.Error as err:
            emit(ErrorEvent(id=None, message=err.info()))
        return True

    def _apply(self, cmd: Command) -> None:
        if isinstance(cmd, (Originate, Conference)):
            self.originate(cmd, service=cmd.TYPE)
        elif isinstance(cmd, AnchorCall):
            self.anchors.command(cmd)
        elif isinstance(cmd, Hangup):
            self.hangup(cmd.id)
        elif isinstance(cmd, GsmCommand):
            self.gsm.command(cmd)
        elif isinstance(cmd, IvrCommand):
            self.ivr.command(cmd)
        elif isinstance(cmd, QueueCommand):
            self._queue_command(cmd)
        elif isinstance(cmd, SuperviseCommand):
            self.supervisors.command(cmd)
        elif isinstance(cmd, RoomCommand):
            self.links.command(cmd)

    def shutdown(self) -> None:
        """Hang up, drain, drop every pjsua2 reference (libDestroy aborts otherwise)."""
        self.ep.hangupAllCalls()
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline:
            self.ep.libHandleEvents(POLL_MS)
            self.run_queue()
        self._queue.clear()
        for name in SHUTDOWN_ORDER:
            if self._has(name):
                self._handlers[name].shutdown()
        for leg in self.legs.values():
            leg.source = leg.audio = None
        self.legs.clear()
        self.rooms.clear()
        self.acc.shutdown()


def _room_key(leg: Leg) -> str:
    """Meet-me rooms and the appliance's conference rooms never share a bridge room."""
    return _meet_me(leg.arg) if leg.service == "room" else leg.arg


def _meet_me(name: str) -> str:
    return f"room-{name}"


def start_endpoint(config: WorkerConfig) -> pj.Endpoint:
    """pjsua2 on the main thread, null audio, G.711 only, one UDP transport."""
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = config.max_calls
    cfg.uaConfig.userAgent = f"callmesh-media/{config.name}"
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    transport = pj.TransportConfig()
    transport.port = config.port
    transport.boundAddress = config.host
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    ep.libStart()
    ep.audDevManager().setNullDev()
    for codec in ep.codecEnum2():
        wanted = codec.codecId.startswith(("PCMU/8000", "PCMA/8000"))
        ep.codecSetPriority(codec.codecId, 255 if codec.codecId.startswith("PCMU") else
                            (254 if wanted else 0))  # fmt: skip
    return ep


def main(argv: list[str] | None = None) -> None:
    """Run one worker until ``quit`` or end of stdin (the appliance went away)."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s media %(levelname)s %(message)s")  # fmt: skip
    # A fault in pjsua2 or in a callback leaves every thread's Python stack in the worker's
    # log (stderr) before the process dies.
    faulthandler.enable()
    config = WorkerConfig.from_json(Path(args[0]).read_text())
    ep = start_endpoint(config)
    worker = Worker(config, ep)
    emit(Ready(port=config.port, name=config.name))
    worker.load()
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    buffered = b""
    running = True
    while running:
        ep.libHandleEvents(POLL_MS)
        worker.run_queue()
        worker.tick(time.monotonic())
        if not select.select([stdin], [], [], 0)[0]:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            break
        buffered += chunk
        while running and b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            running = worker.command(line.decode(errors="replace"))
    worker.shutdown()
    del worker
    gc.collect()
    ep.libDestroy()
    os._exit(0)


if __name__ == "__main__":
    main()
