"""Voice calls: dial, answer, reject, hang up, DTMF, audio routing and the zombie-call watchdog.

Call progress arrives as URCs (decoded by the profile) and as ``AT+CLCC`` listings; both feed
the session's :class:`~drivers.modem.calls.CallTracker`. Audio routing follows the profile:
commands ``before_call`` go before ATD/ATA (Quectel QPCMV), ``on_active`` once the call is up
(Huawei DDSETEX, SIMCom CPCMREG, which is refused earlier) and ``after_call`` after release.
"""

from __future__ import annotations

import logging
import re

from drivers.modem import grammar, info
from drivers.modem.calls import CallEvent
from drivers.modem.errors import ModemError, NoNetwork
from drivers.modem.session import ModemSession
from drivers.modem.urcs import CallState, CallUpdate

log = logging.getLogger(__name__)
_DIALABLE = re.compile(r"^\+?[0-9*#]{1,40}$")
_DTMF = re.compile(r"^[0-9*#A-D]+$")


class Telephony:
    """Call control for one modem."""

    def __init__(self, session: ModemSession) -> None:
        self._session = session
        self._routed = False
        self.grace = 3.0

    async def dial(self, number: str) -> None:
        """Place a voice call; progress arrives as CallEvent (NoNetwork when unregistered)."""
        if not _DIALABLE.match(number):
            raise ValueError(f"not a dialable number: {number!r}")
        reg = await info.registration(self._session)
        if not reg.registered:
            raise NoNetwork(f"no network: not registered (stat {reg.stat}); cannot dial {number}")
        await self._route(self._voice_spec_commands("before_call"))
        await self._session.run(f"ATD{number};", call=True)
        self.handle(self._session.tracker.dialed(number))

    async def answer(self) -> None:
        """Answer the ringing call."""
        await self._route(self._voice_spec_commands("before_call"))
        await self._session.run("ATA", call=True)
        idx = self._session.tracker.index_of(CallState.INCOMING)
        self.handle(self._session.tracker.apply(CallUpdate(idx, CallState.ACTIVE)))
        if idx is None:
            await self.poll()

    async def reject(self, cause: int = 17) -> None:
        """Reject the ringing call with a 24.008 cause (17 user busy, 21 call rejected)."""
        idx = self._session.tracker.index_of(CallState.INCOMING)
        template = self._session.profile.reject
        if template is None or idx is None:
            await self.hangup()
            return
        self._session.tracker.releasing(f"rejected {cause}")
        await self._session.run(template.format(cause=cause, idx=idx))
        self.handle(self._session.tracker.release_all(f"rejected {cause}"))

    async def hangup(self) -> None:
        """Hang up every call."""
        self._session.tracker.releasing("local hangup")
        await self._session.run(self._session.profile.hangup)
        self.handle(self._session.tracker.release_all("local hangup"))

    async def send_dtmf(self, digits: str) -> None:
        """Send DTMF digits in the active call (27.007 §C.2.11 +VTS or the vendor form)."""
        if not _DTMF.match(digits):
            raise ValueError(f"not DTMF digits: {digits!r}")
        idx = self._session.tracker.index_of(CallState.ACTIVE) or 1
        for digit in digits:
            await self._session.run(self._session.profile.dtmf.format(digit=digit, idx=idx))

    async def poll(self) -> None:
        """Read ``AT+CLCC`` and reconcile; releases zombies whose NO CARRIER never came."""
        response = await self._session.run("AT+CLCC", expect=("+CLCC:",))
        records = [grammar.parse_clcc(line) for line in response.lines]
        events = self._session.tracker.reconcile(records, self.grace)
        zombies = sum(1 for event in events if event.cause == "zombie")
        if zombies:
            log.warning("released %d call(s) the modem no longer lists", zombies)
            self._session.counters.zombie_calls += zombies
        self.handle(events)

    def handle(self, events: list[CallEvent]) -> None:
        """Publish call events and keep the audio route in step with them."""
        for event in events:
            self._session.emit(event)
            if event.state is CallState.ACTIVE and not self._routed:
                self._routed = True
                self._session.spawn(self._on_active(), "route voice")
            elif event.state is CallState.RELEASED and not self._session.tracker.active:
                self._session.spawn(self._on_released(), "unroute voice")

    async def _on_active(self) -> None:
        await self._route(self._voice_spec_commands("on_active"))
        voice = self._session.voice
        if voice is not None and voice.is_open:
            voice.start_streaming()

    async def _on_released(self) -> None:
        was_routed, self._routed = self._routed, False
        voice = self._session.voice
        if voice is not None:
            await voice.stop_streaming()
        if was_routed or self._voice_spec_commands("before_call"):
            await self._route(self._voice_spec_commands("after_call"))

    def _voice_spec_commands(self, stage: str) -> tuple[str, ...]:
        spec = self._session.profile.voice
        if spec is None:
            return ()
        commands: tuple[str, ...] = getattr(spec, stage)
        return commands

    async def _route(self, commands: tuple[str, ...]) -> None:
        for command in commands:
            try:
                await self._session.run(command)
            except ModemError as err:
                log.warning("voice routing %r failed: %s", command, err)
