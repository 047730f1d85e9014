"""ModemDriver: one GSM/LTE modem, from opening its ports to its operations.

Theory of operation. :meth:`ModemDriver.start` opens the AT port, waits for the modem to
answer, switches echo off and verbose errors on, identifies the model and picks its profile,
runs the profile's initialisation and opens the voice port. URCs are decoded by the profile and
routed to telephony, messaging or the event subscribers. Supervision and recovery live in
:mod:`drivers.modem.supervisor`; calls in :mod:`drivers.modem.telephony`; SMS and USSD in
:mod:`drivers.modem.messaging`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from drivers.modem import info, recovery
from drivers.modem.calls import CallEvent
from drivers.modem.counters import ModemCounters
from drivers.modem.errors import (
    CommandError,
    CommandTimeout,
    FeatureNotAvailable,
    ModemError,
    NoNetwork,
    NotAModem,
    RecoveryFailed,
    TransportError,
)
from drivers.modem.info import Identity, NetworkInfo, SimInfo
from drivers.modem.messaging import Messaging
from drivers.modem.profiles import PROFILES, get_profile, select_profile
from drivers.modem.protocol import Urc, answer_prefix
from drivers.modem.session import EventStream, ModemSession, ModemStateChanged
from drivers.modem.supervisor import Supervisor
from drivers.modem.telephony import Telephony
from drivers.modem.transport import AtTransport, Timeouts
from drivers.modem.urcs import CallerId, CallUpdate, NewSms, Ring, SmsDelivered, UssdReceived
from drivers.modem.voice import VoicePort

log = logging.getLogger(__name__)
ALL_URC_PREFIXES = tuple(dict.fromkeys(p for prof in PROFILES.values() for p in prof.urc_prefixes))


@dataclass(frozen=True)
class ModemConfig:
    """How to reach and supervise one modem (all times in seconds)."""

    port: str
    voice_port: str | None = None
    open_voice: bool = True
    profile: str | None = None
    imei: str | None = None
    search: tuple[str, ...] = ("/dev/serial/by-id/*",)
    pin: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    pacing: float = 0.02
    keepalive: float = 10.0
    call_poll: float = 1.0
    zombie_grace: float = 3.0
    boot_timeout: float = 30.0
    recovery_timeout: float = 60.0


class ModemDriver:
    """Public face of one modem; every method runs on the event loop that called start()."""

    def __init__(self, config: ModemConfig) -> None:
        self.config = config
        self.counters = ModemCounters()
        self.session = ModemSession(self.counters)
        self.telephony = Telephony(self.session)
        self.telephony.grace = config.zombie_grace
        self.messaging = Messaging(self.session)
        self.supervisor = Supervisor(self)
        self.port = config.port
        self.identity: Identity | None = None
        self.state = "stopped"
        self._supervision: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._state_changed = asyncio.Event()
        self.failure = ""

    @property
    def profile_name(self) -> str:
        """Name of the profile in use."""
        return self.session.profile.name

    @property
    def voice(self) -> VoicePort | None:
        """The PCM port, when the profile has one and it is open."""
        return self.session.voice

    @property
    def calls(self) -> list[CallEvent]:
        """Calls the driver currently tracks."""
        return self.session.tracker.active

    def subscribe(self, limit: int = 256) -> EventStream:
        """Events (CallEvent, SmsReceived, DtmfReceived, ModemStateChanged, ...) from now on."""
        return self.session.subscribe(limit)

    async def start(self) -> None:
        """Open, identify and initialise the modem, then start supervising it."""
        self.set_state("starting")
        try:
            await self.connect(self.config.port, self.config.boot_timeout)
        except BaseException:
            self.set_state("stopped", "start failed")
            raise
        self._supervision = asyncio.get_running_loop().create_task(self.supervisor.run())
        self.set_state("ready")

    async def stop(self) -> None:
        """Stop supervising and close both ports (bounded; safe to call twice)."""
        self.set_state("stopped")
        if self._supervision is not None:
            self._supervision.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervision
            self._supervision = None
        await self.session.cancel_tasks()
        await self.disconnect()

    async def wait_ready(self, within: float) -> None:
        """Wait until ready (after start or recovery); RecoveryFailed once it gave up."""
        async with asyncio.timeout(within):
            while not self._ready.is_set():
                if self.state == "failed":
                    raise RecoveryFailed(f"{self.port}: {self.failure}")
                self._state_changed.clear()
                await self._state_changed.wait()

    async def command(self, text: str, limit: float | None = None) -> list[str]:
        """Run a raw AT command and return its information lines."""
        response = await self.session.run(text, expect=answer_prefix(text), raw=True, limit=limit)
        return list(response.lines)

    async def identify(self) -> Identity:
        """Manufacturer, model, firmware and IMEI."""
        self.identity = await info.identify(self.session)
        return self.identity

    async def sim_info(self, wait: float = 10.0) -> SimInfo:
        """PIN state, ICCID, IMSI and own number; retries while the SIM is busy."""
        deadline = asyncio.get_running_loop().time() + wait
        return await info.sim_info(self.session, deadline)

    async def enter_pin(self, pin: str) -> None:
        """Unlock the SIM (27.007 §8.3)."""
        if not pin.isdigit():
            raise ValueError("a PIN is digits only")
        await self.session.run(f'AT+CPIN="{pin}"')

    async def network_info(self) -> NetworkInfo:
        """Registration, technology, operator and signal."""
        return await info.network_info(self.session)

    async def wait_registered(self, within: float) -> NetworkInfo:
        """Poll until registered; raises NoNetwork after ``within`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            with contextlib.suppress(CommandError):
                net = await info.network_info(self.session)
                if net.registered:
                    return net
            if loop.time() >= deadline:
                raise NoNetwork(f"no network: not registered after {within:.0f} s")
            await asyncio.sleep(0.2)

    async def dial(self, number: str) -> None:
        """Place a voice call; watch the event stream for its progress."""
        await self.telephony.dial(number)

    async def answer(self) -> None:
        """Answer the ringing call."""
        await self.telephony.answer()

    async def reject(self, cause: int = 17) -> None:
        """Reject the ringing call (24.008 cause 17 user busy by default)."""
        await self.telephony.reject(cause)

    async def hangup(self) -> None:
        """Hang up every call."""
        await self.telephony.hangup()

    async def send_dtmf(self, digits: str) -> None:
        """Send DTMF digits in the active call."""
        await self.telephony.send_dtmf(digits)

    async def send_sms(self, number: str, text: str) -> list[int]:
        """Send an SMS (PDU mode, multipart when long); returns message references."""
        return await self.messaging.send_sms(number, text)

    async def ussd(self, code: str, within: float = 30.0) -> str:
        """Run a USSD code and return the reply."""
        return await self.messaging.ussd(code, within)

    async def select_sim(self, slot: int, within: float | None = None) -> SimInfo:
        """Switch to SIM ``slot`` (0-based), wait for re-registration, re-read identity."""
        slots = self.session.profile.sim_slots
        if slots is None or not 0 <= slot < slots.count:
            raise FeatureNotAvailable(f"{self.profile_name} has no SIM slot {slot}")
        limit = within if within is not None else slots.settle_seconds
        for command in slots.select:
            await self.session.run(command.format(slot=slot))
        sim = await self.sim_info(wait=limit)
        await self.wait_registered(limit)
        await self.identify()
        return sim

    async def connect(self, path: str, boot_timeout: float, imei: str | None = None) -> None:
        """Open ``path``, check the IMEI when given, initialise; closes again on failure."""
        transport = AtTransport(
            path,
            urc_prefixes=ALL_URC_PREFIXES,
            on_urc=self._on_urc,
            on_lost=self._on_lost,
            counters=self.counters,
            timeouts=self.config.timeouts,
            pacing=self.config.pacing,
        )
        await transport.open()
        self.session.transport = transport
        try:
            await self._initialise(boot_timeout, imei)
        except BaseException:
            await self.disconnect()
            raise
        self.port = path

    async def _initialise(self, boot_timeout: float, imei: str | None) -> None:
        await self._wait_alive(boot_timeout)
        await self.session.run("ATE0")
        await self.session.run("AT+CMEE=2")
        identity = await self.identify()
        if imei is not None and identity.imei != imei:
            raise NotAModem(f"{self.port} answers with IMEI {identity.imei}, expected {imei}")
        name = self.config.profile
        profile = (
            get_profile(name) if name else select_profile(identity.manufacturer, identity.model)
        )
        self.session.profile = profile
        for alternatives in profile.init:
            await self._first_accepted(alternatives)
        if self.config.pin:
            await self._unlock(self.config.pin)
        await self._open_voice()

    async def _wait_alive(self, boot_timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + boot_timeout
        while True:
            try:
                await self.session.run("AT", limit=self.config.timeouts.short)
                return
            except CommandTimeout:
                if loop.time() >= deadline:
                    raise NotAModem(f"not a modem: {self.port} does not answer AT") from None
            except CommandError:
                return

    async def _first_accepted(self, alternatives: tuple[str, ...]) -> None:
        for command in alternatives:
            try:
                await self.session.run(command)
                return
            except CommandError as err:
                log.info("%s: %s refused (%s)", self.port, command, err.result)
        log.warning("%s: none of %s accepted", self.port, alternatives)

    async def _unlock(self, pin: str) -> None:
        with contextlib.suppress(CommandError):
            if await info.pin_state(self.session) == "SIM PIN":
                await self.enter_pin(pin)

    def voice_path(self) -> tuple[str, int] | None:
        """The PCM tty (by-id path when the AT port has one) and its sample rate."""
        spec = self.session.profile.voice
        if spec is None:
            return None
        path = recovery.sibling_port(self.port, spec.interface) or self.config.voice_port
        if path is None or not recovery.present(path):
            return None
        return path, spec.sample_rate

    async def _open_voice(self) -> None:
        if not self.config.open_voice or self.session.profile.voice is None:
            return
        found = self.voice_path()
        if found is None:
            log.warning("%s: no voice port found (profile %s)", self.port, self.profile_name)
            return
        path, rate = found
        voice = VoicePort(path, sample_rate=rate)
        try:
            await voice.open()
        except TransportError as err:
            log.warning("%s: cannot open voice port: %s", self.port, err)
            return
        self.session.voice = voice

    async def disconnect(self) -> None:
        """Close the voice and AT ports."""
        voice, self.session.voice = self.session.voice, None
        if voice is not None:
            await voice.close()
        transport, self.session.transport = self.session.transport, None
        if transport is not None:
            transport.close()

    def _on_urc(self, urc: Urc) -> None:
        try:
            decoded = self.session.profile.decode(urc.line, urc.body)
        except ModemError as err:
            self.counters.garbage_lines += 1
            log.warning("%s: bad URC %r: %s", self.port, urc.line, err)
            return
        tracker = self.session.tracker
        if isinstance(decoded, Ring):
            tracker.ring()
            if self.session.profile.poll_calls:
                self.session.spawn(self.telephony.poll(), "poll calls")
        elif isinstance(decoded, CallerId):
            self.telephony.handle(tracker.caller_id(decoded.number))
        elif isinstance(decoded, CallUpdate):
            self.telephony.handle(tracker.apply(decoded))
        elif isinstance(decoded, NewSms):
            self.session.spawn(self.messaging.fetch(decoded.index), "fetch sms")
        elif isinstance(decoded, SmsDelivered):
            self.messaging.deliver(decoded.pdu)
        elif decoded is not None:
            if isinstance(decoded, UssdReceived):
                self.messaging.on_ussd(decoded.cusd)
            self.session.emit(decoded)

    def _on_lost(self, err: TransportError) -> None:
        if self.state == "ready":
            self.session.spawn(self.supervisor.recover(str(err)), "recover modem")

    def set_state(self, state: str, reason: str = "") -> None:
        """Record and announce the driver state."""
        self.state = state
        self._state_changed.set()
        if state == "ready":
            self._ready.set()
        else:
            self._ready.clear()
        self.session.emit(ModemStateChanged(state, reason))
