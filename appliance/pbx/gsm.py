"""GSM channels as PBX trunks: channel choice, the modem's call control and its SIP leg.

Theory of operation. Each GSM channel (one modem, its selected SIM) is served by one
GSM media worker (up to four channels per worker, fixed by configuration order); the
worker owns the channel's PCM audio, the appliance keeps the modem's AT side.

Outbound: the dial plan answers ``gsm`` for a route to a GSM trunk group; ``decide`` picks
a channel of the group through the SIM policy (registered, budget left, idle; by the
group's strategy), leaving out channels this call already tried, and reserves it for
``reserve_s``. Kamailio sends the INVITE to ``sip:<number>@<worker>;gsm=<channel>``; the
worker reports it (``invite``), the appliance dials (ATD), maps alerting to 180 and the
active call to 200 with the bridge opened, and a release before answer to a SIP code
(``gsm_machine.CAUSES``). A 503 makes Kamailio's failure_route ask the dial plan again,
which picks the next channel (up to ``max_attempts``); busy, no answer and rejections end
the call. The SIP side hanging up hangs the modem up (ATH) and vice versa.

Inbound: a ringing modem (RING/+CLIP) is held busy and its SIM's ICCID looked up in
``pbx.gsm.inbound`` (else ``default_inbound``); the worker calls that target through
Kamailio presenting the caller's number, and the modem answers (ATA) when the SIP side
does. Kamailio's ``invite`` event for such a call carries the channel (header
``X-Callmesh-Gsm``) and is marked inbound here, so the CDR and the webhooks show the
trunk, the SIM and the caller.

A modem that vanishes mid-call (its voice tty or AT port gone) ends the call as
``interrupted`` with reason ``modem-lost``; the SIM policy sees the channel unregistered
until the driver recovers it, so it leaves the pool and rejoins by itself.

The call's life is the pure state machine of ``appliance.pbx.gsm_machine``: this service
only turns the worker's, the modem's and its timers' events into its ``GsmInput`` and
runs the actions each transition answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from appliance.pbx.calls import CallService
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision, DialPlan
from appliance.pbx.gsm_machine import (
    CAUSES,
    WAITS_FOR_LATE_CAUSE,
    Act,
    Action,
    GsmEvent,
    GsmInput,
    GsmState,
    HangupCause,
    InvalidTransition,
    step,
)
from appliance.pbx.media import MediaPool, MediaWorker
from appliance.pbx.settings import GsmSettings
from appliance.sim import CallOutcome, Pick, SimService
from drivers.media.protocol import (
    Command,
    GsmAnswer,
    GsmDtmf,
    GsmEnd,
    GsmIncoming,
    GsmLegEvent,
    GsmMove,
    GsmProgress,
)
from drivers.modem import CallEvent, CallState, DtmfReceived, ModemDriver
from drivers.modem.errors import ModemError
from drivers.sip.events import Invite

log = logging.getLogger(__name__)

LATE_CAUSE_WAIT_S = 0.5
TRIED_KEEP_S = 120.0
CLEAR_WAIT_S = 10.0
DIAL_ERRORS = (ModemError, ValueError)
REFUSED_Q850 = CAUSES[HangupCause.REJECTED].q850


def release_input(cause: str | None) -> GsmInput:
    """The machine's event for a modem release with ``cause``."""
    event = GsmEvent.MODEM_LOST if cause == "modem lost" else GsmEvent.RELEASED
    return GsmInput(event, cause=cause)


class GsmChannel(Protocol):
    """A channel of the gateway as the trunk service needs it."""

    channel: str
    driver: ModemDriver


@dataclass
class GsmCall:
    """One call on a channel, from reservation or ring to release."""

    channel: str
    iccid: str
    sim_number: str
    inbound: bool
    number: str = ""
    call_id: str | None = None
    state: GsmState = GsmState.RESERVED
    max_call_s: int | None = None
    answered_at: float | None = None
    cause: str = ""
    group: str = ""
    finished: bool = False
    created: float = field(default_factory=time.monotonic)
    timer: asyncio.TimerHandle | None = None

    def info(self) -> dict[str, Any]:
        """What the CDR's ``gsm`` field holds."""
        return {
            "channel": self.channel,
            "iccid": self.iccid,
            "sim_number": self.sim_number,
            "cause": self.cause or None,
        }


class GsmTrunkService:
    """Owns GSM calls: channel picks, modem call control, the worker legs (a component)."""

    name = "gsm"

    def __init__(
        self,
        settings: GsmSettings,
        channels: Sequence[GsmChannel],
        sim: SimService,
        pool: MediaPool,
        calls: Callable[[], CallService],
        dialplan: Callable[[], DialPlan],
    ) -> None:
        self._settings = settings
        self._channels = {c.channel: c for c in channels}
        self._sim = sim
        self._pool = pool
        self._calls = calls
        self._dialplan = dialplan
        self._inbound = {r.iccid.rstrip("F"): r.target for r in settings.inbound}
        self.active: dict[str, GsmCall] = {}
        self._tried: dict[str, tuple[set[str], float]] = {}
        self._late: dict[str, asyncio.Future[str | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchers: list[asyncio.Task[None]] = []
        self._handlers = self._action_handlers()
        self.started = False

    async def start(self) -> None:
        """Watch every channel's driver events."""
        self._watchers = [asyncio.create_task(self._watch(c)) for c in self._channels.values()]
        self.started = True

    async def stop(self) -> None:
        """Stop watching; hang up calls still on the modems."""
        self.started = False
        for task in [*self._watchers, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._watchers, *self._tasks, return_exceptions=True)
        for call in list(self.active.values()):
            if call.state is not GsmState.RESERVED:
                with contextlib.suppress(ModemError, TimeoutError):
                    async with asyncio.timeout(5):
                        await self._channels[call.channel].driver.hangup()

    def worker_for(self, channel: str) -> MediaWorker | None:
        """The GSM worker serving ``channel``."""
        return next((w for w in self._pool.workers if channel in w.config.gsm_channels), None)

    # -- outbound ------------------------------------------------------------------------

    def decide(self, decision: Decision, call_id: str) -> Decision:
        """Turn the dial plan's ``gsm`` decision into one channel of the group, or a refusal."""
        if not self.started:
            return Decision("reject", code=503, reason="gsm-not-started", route=decision.route)
        group = self._dialplan().gsm_groups[decision.trunk]
        tried = self._tried_for(call_id)
        if len(tried) >= self._settings.max_attempts:
            return Decision(
                "reject", code=503, reason="gsm-attempts-exhausted", route=decision.route
            )
        # A worker that already refused this call would see the same INVITE again (482).
        used = {self.worker_for(c) for c in tried}
        among = [
            c
            for c in group.channels
            if c not in tried
            and c not in self.active
            and c in self._channels
            and self._live(c)
            and self.worker_for(c) not in used
        ]
        picked = self._sim.pick(among=among, strategy=group.strategy)
        if not isinstance(picked, Pick):
            log.info("no GSM channel", extra={"group": group.name, "reasons": picked.reasons})
            return Decision("reject", code=503, reason="no-gsm-channel", route=decision.route)
        tried.add(picked.channel)
        worker = self.worker_for(picked.channel)
        assert worker is not None
        call = GsmCall(
            picked.channel,
            picked.iccid,
            self._sim_number(picked.channel),
            False,
            decision.uri,
            call_id,
            max_call_s=picked.max_call_s,
            group=group.name,
        )
        self.active[picked.channel] = call
        loop = asyncio.get_running_loop()
        call.timer = loop.call_later(self._settings.reserve_s, self._reservation_expired, call)
        uri = f"sip:{decision.uri}@{worker.address};gsm={picked.channel}"
        log.info("gsm channel picked", extra={"channel": picked.channel, "call_id": call_id})
        return Decision(
            "gsm", uri=uri, route=decision.route, trunk=picked.channel, recording=decision.recording
        )

    def _tried_for(self, call_id: str) -> set[str]:
        now = time.monotonic()
        for key in [k for k, (_, at) in self._tried.items() if now - at > TRIED_KEEP_S]:
            del self._tried[key]
        return self._tried.setdefault(call_id, (set(), now))[0]

    def _live(self, channel: str) -> bool:
        worker = self.worker_for(channel)
        return worker is not None and worker.alive

    def _sim_number(self, channel: str) -> str:
        state = self._sim.states.get(channel)
        return state.sim.number if state is not None and state.sim is not None else ""

    def _reservation_expired(self, call: GsmCall) -> None:
        if self.active.get(call.channel) is call:
            self._feed(call, GsmInput(GsmEvent.EXPIRED))

    # -- the state machine ---------------------------------------------------------------

    def _feed(self, call: GsmCall, event: GsmInput) -> None:
        """Step the call's state machine and run the transition's actions in order."""
        try:
            transition = step(call.state, event)
        except InvalidTransition as err:
            log.warning(
                "gsm event refused",
                extra={"error_id": err.error_id, "channel": call.channel, "error": str(err)},
            )
            return
        call.state = transition.state
        if transition.actions:
            self._spawn(self._execute(call, transition.actions), call.channel)

    async def _execute(self, call: GsmCall, actions: tuple[Action, ...]) -> None:
        for action in actions:
            await self._handlers[action.act](call, action)

    def _action_handlers(self) -> dict[Act, Callable[[GsmCall, Action], Awaitable[None]]]:
        return {
            Act.REFUSE_INVITE: self._refuse_invite,
            Act.CANCEL_TIMER: self._cancel_timer,
            Act.RECORD_TRUNK: self._record_trunk,
            Act.RECORD_CDR: self._record_cdr,
            Act.DIAL: self._dial,
            Act.SEND_PROGRESS: self._send_progress,
            Act.MARK_ANSWERED: self._mark_answered,
            Act.ARM_TIME_LIMIT: self._arm_time_limit,
            Act.OPEN_BRIDGE: self._open_bridge,
            Act.ANSWER_MODEM: self._answer_modem,
            Act.HANG_UP: self._hang_up,
            Act.CLEAR_MODEM: self._clear_modem,
            Act.REJECT_MODEM: self._reject_modem,
            Act.SET_CAUSE: self._set_cause,
            Act.KEEP_CAUSE: self._keep_cause,
            Act.MARK_LOST: self._mark_lost,
            Act.END_LEG: self._end_leg,
            Act.FAIL_OVER: self._fail_over,
            Act.FINISH: self._finish,
            Act.RELEASE_SIM: self._release_sim,
            Act.FORGET: self._forget,
        }

    # -- worker events -------------------------------------------------------------------

    def on_worker_event(self, worker: MediaWorker, event: GsmLegEvent) -> None:
        """A ``gsm`` event from a worker."""
        channel, state = event.channel, event.state
        call = self.active.get(channel)
        if state == "invite":
            self._invited(worker, channel, call, event)
        elif call is None:
            return
        elif state == "answered":
            self._feed(call, GsmInput(GsmEvent.ANSWERED))
        elif state == "dtmf":
            self._spawn(self._driver(call).send_dtmf(event.digits), channel)
        elif state == "lost":
            why = event.reason or "voice port gone"
            log.warning("gsm voice port lost", extra={"channel": channel, "why": why})
            self._feed(call, GsmInput(GsmEvent.VOICE_LOST))
        elif state == "ended":
            log.info(
                "gsm leg ended",
                extra={
                    "channel": channel,
                    "code": event.code,
                    "frames": event.frames,
                },
            )
            self._feed(call, GsmInput(GsmEvent.SIP_ENDED, sip_code=event.code))

    def _invited(
        self, worker: MediaWorker, channel: str, call: GsmCall | None, event: GsmLegEvent
    ) -> None:
        if call is None:
            worker.send(GsmEnd(channel, code=503, reason="no reservation"))
            return
        if call.state is GsmState.RESERVED:
            call.call_id = event.call_id or call.call_id
        self._feed(call, GsmInput(GsmEvent.INVITE))

    # -- modem events --------------------------------------------------------------------

    async def _watch(self, channel: GsmChannel) -> None:
        events = channel.driver.subscribe()
        while True:
            with contextlib.suppress(TimeoutError):
                event = await events.get(within=60.0)
                if isinstance(event, CallEvent):
                    self._call_event(channel, event)
                elif isinstance(event, DtmfReceived):
                    self._far_dtmf(channel.channel, event.digit)

    def _call_event(self, channel: GsmChannel, event: CallEvent) -> None:
        call = self.active.get(channel.channel)
        if event.state is CallState.RELEASED:
            self._release_event(channel.channel, call, event)
        elif event.incoming and event.state is CallState.INCOMING:
            if call is None:
                self._incoming(channel, event.number or "anonymous")
        elif call is None:
            return
        elif event.state is CallState.ALERTING:
            self._feed(call, GsmInput(GsmEvent.ALERTING))
        elif event.state is CallState.ACTIVE:
            self._feed(call, GsmInput(GsmEvent.CONNECTED))

    def _time_limit(self, call: GsmCall) -> None:
        if self.active.get(call.channel) is call:
            log.info("gsm call reached the SIM's time limit", extra={"channel": call.channel})
            self._feed(call, GsmInput(GsmEvent.TIME_LIMIT))

    def _release_event(self, channel: str, call: GsmCall | None, event: CallEvent) -> None:
        """The modem released a call; a release without a cause may get one just after."""
        if event.late_cause:
            late = self._late.pop(channel, None)
            if late is not None and not late.done():
                late.set_result(event.cause)
            return
        if call is None:
            return
        if event.cause is None and call.state in WAITS_FOR_LATE_CAUSE:
            waiter: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            self._late[channel] = waiter
            self._spawn(self._late_release(call, waiter), channel)
            return
        self._feed(call, release_input(event.cause))

    async def _late_release(self, call: GsmCall, waiter: asyncio.Future[str | None]) -> None:
        try:
            cause = await asyncio.wait_for(waiter, LATE_CAUSE_WAIT_S)
        except TimeoutError:
            cause = None
        finally:
            self._late.pop(call.channel, None)
        self._feed(call, release_input(cause))

    # -- actions -------------------------------------------------------------------------

    async def _refuse_invite(self, call: GsmCall, _: Action) -> None:
        self._send(call, lambda channel: GsmEnd(channel, code=503, reason="no reservation"))

    async def _cancel_timer(self, call: GsmCall, _: Action) -> None:
        if call.timer is not None:
            call.timer.cancel()

    async def _record_trunk(self, call: GsmCall, _: Action) -> None:
        self._update_cdr(call, trunk=call.channel)

    async def _record_cdr(self, call: GsmCall, _: Action) -> None:
        self._update_cdr(call)

    async def _dial(self, call: GsmCall, _: Action) -> None:
        try:
            await self._driver(call).dial(call.number)
        except DIAL_ERRORS as err:
            log.warning("gsm dial failed", extra={"channel": call.channel, "error": str(err)})
            cause = "no network" if "network" in str(err) else "dial failed"
            self._feed(call, GsmInput(GsmEvent.DIAL_FAILED, cause=cause))

    async def _send_progress(self, call: GsmCall, _: Action) -> None:
        self._send(call, GsmProgress)

    async def _mark_answered(self, call: GsmCall, _: Action) -> None:
        call.answered_at = time.monotonic()

    async def _arm_time_limit(self, call: GsmCall, _: Action) -> None:
        if call.max_call_s:
            loop = asyncio.get_running_loop()
            call.timer = loop.call_later(call.max_call_s, self._time_limit, call)

    async def _open_bridge(self, call: GsmCall, _: Action) -> None:
        voice = self._driver(call).voice_path()
        if voice is None:
            log.warning("gsm call without voice port", extra={"channel": call.channel})
            self._feed(call, GsmInput(GsmEvent.VOICE_LOST))
            return
        self._send(call, lambda channel: GsmAnswer(channel, voice_port=voice[0], rate=voice[1]))

    async def _answer_modem(self, call: GsmCall, _: Action) -> None:
        try:
            await self._driver(call).answer()
        except ModemError as err:
            log.warning("gsm answer failed", extra={"channel": call.channel, "error": str(err)})
            self._feed(call, GsmInput(GsmEvent.ANSWER_FAILED))

    async def _hang_up(self, call: GsmCall, _: Action) -> None:
        await self._driver(call).hangup()

    async def _clear_modem(self, call: GsmCall, _: Action) -> None:
        with contextlib.suppress(ModemError, TimeoutError):
            async with asyncio.timeout(CLEAR_WAIT_S):
                await self._driver(call).hangup()
        self._feed(call, GsmInput(GsmEvent.HUNG_UP))

    async def _reject_modem(self, call: GsmCall, action: Action) -> None:
        with contextlib.suppress(ModemError, TimeoutError):
            async with asyncio.timeout(CLEAR_WAIT_S):
                await self._driver(call).reject(action.q850)
        self._feed(call, GsmInput(GsmEvent.HUNG_UP))

    async def _set_cause(self, call: GsmCall, action: Action) -> None:
        call.cause = action.text

    async def _keep_cause(self, call: GsmCall, action: Action) -> None:
        call.cause = call.cause or action.text

    async def _mark_lost(self, call: GsmCall, _: Action) -> None:
        log.warning("gsm modem lost mid-call", extra={"channel": call.channel})
        call.cause = "modem lost"
        if call.call_id:
            self._calls().update(call.call_id, media_interrupted="modem-lost", gsm=call.info())

    async def _fail_over(self, call: GsmCall, action: Action) -> None:
        """Move the call to the next channel on its worker, else end its leg with the code."""
        log.info(
            "gsm call failed",
            extra={"channel": call.channel, "cause": call.cause, "sip_code": action.code},
        )
        moved = self._next_on_worker(call)
        if moved is None:
            await self._end_leg(call, action)
            return
        await self._forget(call, action)
        self._send(call, lambda channel: GsmMove(channel, to=moved.channel))
        self._feed(moved, GsmInput(GsmEvent.INVITE))

    def _next_on_worker(self, call: GsmCall) -> GsmCall | None:
        """Another channel of the call's group on the same worker, reserved for the call.

        The worker still holds the SIP call unanswered, so the call moves there without a
        new INVITE; channels of other workers are tried through Kamailio (a 503).
        """
        group = self._dialplan().gsm_groups.get(call.group)
        worker = self.worker_for(call.channel)
        if group is None or call.call_id is None or worker is None:
            return None
        tried = self._tried_for(call.call_id)
        if len(tried) >= self._settings.max_attempts:
            return None
        among = [c for c in group.channels if c not in tried and c not in self.active
                 and self.worker_for(c) is worker and c in self._channels]  # fmt: skip
        picked = self._sim.pick(among=among, strategy=group.strategy)
        if not isinstance(picked, Pick):
            return None
        tried.add(picked.channel)
        moved = GsmCall(picked.channel, picked.iccid, self._sim_number(picked.channel), False,
                        call.number, call.call_id, max_call_s=picked.max_call_s,
                        group=call.group)  # fmt: skip
        self.active[picked.channel] = moved
        log.info("gsm call moves to the next channel",
                 extra={"from": call.channel, "to": picked.channel})  # fmt: skip
        return moved

    def _far_dtmf(self, channel: str, digit: str) -> None:
        call = self.active.get(channel)
        if call is not None and call.answered_at is not None:
            self._send(call, lambda channel: GsmDtmf(channel, digits=digit))

    # -- inbound -------------------------------------------------------------------------

    def _incoming(self, channel: GsmChannel, number: str) -> None:
        state = self._sim.states.get(channel.channel)
        iccid = state.sim.iccid if state is not None and state.sim is not None else ""
        target = self._inbound.get(iccid.rstrip("F"), self._settings.default_inbound)
        voice = channel.driver.voice_path()
        worker = self.worker_for(channel.channel)
        why = (
            "no inbound route"
            if target is None
            else "no voice port"
            if voice is None
            else "worker down"
            if worker is None or not worker.alive
            else "channel reserved"
            if not self._sim.hold(channel.channel)
            else ""
        )
        if why or target is None or voice is None or worker is None:
            log.warning(
                "gsm call refused", extra={"channel": channel.channel, "why": why, "caller": number}
            )
            self._spawn(channel.driver.reject(REFUSED_Q850), channel.channel)
            return
        call = GsmCall(
            channel.channel,
            iccid,
            self._sim_number(channel.channel),
            True,
            number,
            state=GsmState.RINGING,
        )
        self.active[channel.channel] = call
        log.info(
            "gsm call in", extra={"channel": channel.channel, "caller": number, "target": target}
        )
        worker.send(
            GsmIncoming(
                channel=channel.channel,
                from_=number,
                to=target,
                voice_port=voice[0],
                rate=voice[1],
            )
        )

    def enrich(self, event: Invite) -> Invite:
        """Kamailio's ``invite`` event of a call, with a GSM call's channel, SIM and direction."""
        channel = event.gsm
        call = self.active.get(channel) if channel else None
        if call is not None and call.inbound:
            call.call_id = event.call_id
            event = replace(
                event, from_trunk=True, trunk=channel, route=f"gsm-inbound:{call.iccid}"
            )
        else:
            call = next((c for c in self.active.values() if c.call_id == event.call_id), None)
        if call is None:
            return event
        return replace(event, gsm_info=call.info())

    # -- helpers -------------------------------------------------------------------------

    def worker_lost(self, worker: MediaWorker) -> None:
        """A GSM worker died: hang up the modems of its channels."""
        for call in list(self.active.values()):
            if call.channel in worker.config.gsm_channels:
                self._feed(call, GsmInput(GsmEvent.WORKER_LOST))

    def status(self) -> list[dict[str, Any]]:
        """Every channel: its worker and the call on it."""
        result = []
        for name in self._channels:
            worker = self.worker_for(name)
            call = self.active.get(name)
            state = self._sim.states.get(name)
            result.append(
                {
                    "channel": name,
                    "modem": self._channels[name].driver.state,
                    "registered": bool(state and state.registered and state.sim),
                    "worker": worker.config.name if worker else None,
                    "worker_alive": bool(worker and worker.alive),
                    "call": None
                    if call is None
                    else {
                        "state": call.state,
                        "inbound": call.inbound,
                        "number": call.number,
                        "call_id": call.call_id,
                        **call.info(),
                    },
                }
            )
        return result

    async def _end_leg(self, call: GsmCall, action: Action) -> None:
        self._send(call, lambda channel: GsmEnd(channel, code=action.code, reason=action.reason))

    def _send(self, call: GsmCall, command: Callable[[str], Command]) -> None:
        """Send the command ``command(channel)`` to the worker of the call's channel."""
        worker = self.worker_for(call.channel)
        if worker is not None:
            worker.send(command(call.channel))

    def _update_cdr(self, call: GsmCall, **fields: Any) -> None:
        if call.call_id:
            self._calls().update(call.call_id, gsm=call.info(), **fields)

    async def _finish(self, call: GsmCall, _: Action) -> None:
        """Count the call against its SIM once and free the channel.

        Incoming calls nobody answered are not the SIM's failures: they free the channel
        without counting (no call, no failure streak).
        """
        if call.finished:
            return
        call.finished = True
        if call.timer is not None:
            call.timer.cancel()
        if call.inbound and call.answered_at is None:
            self._sim.release(call.channel)
            return
        connected = time.monotonic() - call.answered_at if call.answered_at else 0.0
        ended = datetime.datetime.now(datetime.UTC)
        await self._sim.call_ended(
            CallOutcome(call.channel, call.iccid, ended, call.answered_at is not None, connected)
        )

    async def _release_sim(self, call: GsmCall, _: Action) -> None:
        log.warning("gsm reservation expired", extra={"channel": call.channel})
        self._sim.release(call.channel)

    async def _forget(self, call: GsmCall, _: Action) -> None:
        if self.active.get(call.channel) is call:
            del self.active[call.channel]

    def _driver(self, call: GsmCall) -> ModemDriver:
        return self._channels[call.channel].driver

    def _spawn(self, work: Any, channel: str) -> None:
        async def run() -> None:
            try:
                await work
            except ModemError as err:
                log.warning(
                    "gsm modem command failed", extra={"channel": channel, "error": str(err)}
                )

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class GsmDecider:
    """The routing chain's GSM link: a ``gsm`` decision becomes one channel of its group."""

    name = "gsm"
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(self, trunks: GsmTrunkService) -> None:
        self._trunks = trunks

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """A channel picked (and reserved) for a ``gsm`` decision, or a refusal."""
        if decision is None or decision.action != "gsm":
            return decision
        picked = self._trunks.decide(decision, query.call_id)
        return replace(
            picked,
            peer_site=decision.peer_site,
            caller_ext=decision.caller_ext,
            conversation=decision.conversation,
        )
