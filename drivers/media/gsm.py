"""GSM channel legs of a media worker: a modem's PCM tty bridged to one SIP call.

Theory of operation. The appliance keeps AT control of every modem (dial, answer, hang
up, call state); the worker owns the audio. For each GSM call the appliance names the
channel's voice tty and sample rate, the worker opens it raw and non-blocking and puts a
``ModemAudioPort`` into its conference bridge, connected both ways to the SIP call's
audio. The port's callbacks run on the bridge's clock thread every 20 ms and only call
``PcmLink`` (one read, one write, a buffer decision: a few microseconds); reading the
bridge's frame goes through ``vector_bytes`` instead of ``bytes(frame.buf)``.

Outbound (SIP → GSM): Kamailio sends the INVITE to ``sip:<number>@<worker>;gsm=<channel>``;
the worker reports ``gsm`` state ``invite`` and holds the call unanswered until the
appliance says ``gsm-progress`` (180), ``gsm-answer`` (open the tty, 200 OK) or
``gsm-end`` (final code). Inbound (GSM → SIP): ``gsm-incoming`` makes the worker call
the target through Kamailio presenting the GSM caller's number; it reports ``ringing``,
``answered`` and ``ended`` and opens the tty once answered.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import TYPE_CHECKING

import pjsua2 as pj

from drivers.media.link_port import PcmLinkPort
from drivers.media.pcm import PcmLink, open_tty
from drivers.media.protocol import (
    Emit,
    ErrorEvent,
    Frames,
    GsmAnswer,
    GsmCommand,
    GsmDtmf,
    GsmEnd,
    GsmIncoming,
    GsmLegEvent,
    GsmMove,
    GsmProgress,
    GsmStats,
    GsmStatsEvent,
)

if TYPE_CHECKING:
    from drivers.media.worker import Call, Leg, Worker

GSM_HEADER = "X-Callmesh-Gsm"
FRAME_USEC = 20000


class ModemAudioPort(PcmLinkPort):
    """A modem's PCM tty as a conference port (callbacks: clock thread)."""


def open_port(channel: str, path: str, rate: int, target: int) -> ModemAudioPort:
    """Open the voice tty and register a port for it in the conference bridge."""
    frame_bytes = rate // 50 * 2
    link = PcmLink(open_tty(path), frame_bytes, target=target)
    port = ModemAudioPort(link)
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_PCM, rate, 1, FRAME_USEC, 16)
    try:
        port.createPort(f"gsm-{channel}", fmt)
    except pj.Error:
        link.close()
        raise
    return port


def connect(port: ModemAudioPort, audio: pj.AudioMedia) -> None:
    """Modem audio to the call and the call's audio to the modem."""
    port.startTransmit(audio)
    audio.startTransmit(port)


def counters(port: ModemAudioPort | None) -> Frames:
    """The link's frame counters plus its current depth (empty without a port)."""
    if port is None:
        return {}
    return {**asdict(port.link.counters), "depth": port.link.depth, "lost": port.link.lost}


class GsmLegs:
    """The worker's GSM legs, one per channel; every method runs on the worker's main thread."""

    def __init__(self, worker: Worker, emit: Emit) -> None:
        self.worker = worker
        self._emit = emit
        self.legs: dict[str, Leg] = {}

    def incoming(self, call: Call, number: str, channel: str) -> None:
        """Kamailio routed an outbound GSM call here: report it, answer only when told."""
        worker = self.worker
        prm = pj.CallOpParam()
        if channel not in worker.config.gsm_channels:
            prm.statusCode = 404
        elif channel in self.legs or len(worker.legs) >= worker.config.max_calls:
            prm.statusCode = 486
        else:
            leg = worker.new_leg(call, "gsm", channel)
            self.legs[channel] = leg
            self._emit(
                GsmLegEvent(
                    channel=channel,
                    state="invite",
                    number=number,
                    call_id=call.getInfo().callIdString,
                )
            )
            return
        call.answer(prm)

    def command(self, cmd: GsmCommand) -> None:
        """Apply one ``gsm-*`` command."""
        if isinstance(cmd, GsmStats):
            channels = {ch: counters(leg.port) for ch, leg in self.legs.items()}
            self._emit(GsmStatsEvent(channels=channels))
            return
        channel = cmd.channel
        if isinstance(cmd, GsmIncoming):
            self._place(channel, cmd)
            return
        leg = self.legs.get(channel)
        if leg is None:
            self._emit(ErrorEvent(id=channel, message=f"no GSM call on {channel}"))
        elif isinstance(cmd, GsmProgress) and not leg.outgoing:
            self._answer(leg, 180)
        elif isinstance(cmd, GsmAnswer):
            leg.voice = (cmd.voice_port, cmd.rate)
            if leg.outgoing:
                self.media(leg)
            else:
                self._answer(leg, 200)
        elif isinstance(cmd, GsmEnd):
            self._end(leg, cmd.code or 503, cmd.reason or "GSM failure")
        elif isinstance(cmd, GsmDtmf):
            leg.call.dialDtmf(cmd.digits)
        elif isinstance(cmd, GsmMove) and not leg.answered:
            del self.legs[channel]
            leg.arg = cmd.to
            self.legs[leg.arg] = leg

    def _place(self, channel: str, cmd: GsmIncoming) -> None:
        worker = self.worker
        if channel in self.legs or len(worker.legs) >= worker.config.max_calls:
            self._emit(
                GsmLegEvent(
                    channel=channel,
                    state="ended",
                    code=486,
                    reason="worker-busy",
                    answered=False,
                    frames={},
                )
            )
            return
        number = re.sub(r"[^0-9+*#]", "", cmd.from_) or "anonymous"
        call = worker.make_call()
        prm = pj.CallOpParam(True)
        prm.txOption.localUri = f'"{number}" <sip:{number}@{worker.config.domain}>'
        header = pj.SipHeader()
        header.hName, header.hValue = GSM_HEADER, channel
        prm.txOption.headers.append(header)
        try:
            call.makeCall(f"sip:{cmd.to}@{worker.config.domain}", prm)
        except pj.Error as err:
            self._emit(
                GsmLegEvent(
                    channel=channel,
                    state="ended",
                    code=500,
                    reason=err.reason,
                    answered=False,
                    frames={},
                )
            )
            return
        leg = worker.new_leg(call, "gsm", channel)
        leg.outgoing = True
        leg.voice = (cmd.voice_port, cmd.rate)
        self.legs[channel] = leg

    def _answer(self, leg: Leg, code: int) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = code
        leg.call.answer(prm)

    def _end(self, leg: Leg, code: int, reason: str) -> None:
        prm = pj.CallOpParam()
        if not leg.answered and not leg.outgoing:
            prm.statusCode = code if code >= 300 else 503
            prm.reason = reason
        leg.call.hangup(prm)

    def state(self, leg: Leg, state: int, code: int, reason: str) -> None:
        """A GSM leg's SIP call changed state."""
        if state == pj.PJSIP_INV_STATE_EARLY and leg.outgoing:
            self._emit(GsmLegEvent(channel=leg.arg, state="ringing", code=code))
        elif state == pj.PJSIP_INV_STATE_CONFIRMED:
            leg.answered = True
            self._emit(GsmLegEvent(channel=leg.arg, state="answered"))
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            frames = counters(leg.port)
            self.worker.forget(leg.call.getId(), leg)
            self._emit(
                GsmLegEvent(
                    channel=leg.arg,
                    state="ended",
                    code=code,
                    reason=reason,
                    answered=leg.answered,
                    frames=frames,
                )
            )

    def media(self, leg: Leg) -> None:
        """Bridge the modem once both the call's audio and the voice tty are known."""
        if leg.audio is None or leg.voice is None or leg.port is not None:
            return
        path, rate = leg.voice
        try:
            leg.port = open_port(leg.arg, path, rate, self.worker.config.jitter_frames)
        except (OSError, pj.Error) as err:
            # The appliance ends the leg (gsm-end) once the CDR says why.
            leg.lost = True
            self._emit(
                GsmLegEvent(channel=leg.arg, state="lost", reason=f"voice port {path}: {err}")
            )
            return
        connect(leg.port, leg.audio)

    def digit(self, leg: Leg, digit: str) -> None:
        """The SIP side pressed a key: the modem sends it to the GSM far end."""
        self._emit(GsmLegEvent(channel=leg.arg, state="dtmf", digits=digit))

    def tick(self) -> None:
        """Report a voice tty that went away (the modem was unplugged) once."""
        for leg in self.legs.values():
            if leg.port is not None and leg.port.link.lost and not leg.lost:
                leg.lost = True
                self._emit(GsmLegEvent(channel=leg.arg, state="lost", reason="voice port gone"))

    def forget(self, leg: Leg) -> None:
        """Take the leg's port out of the bridge, then close its tty."""
        if self.legs.get(leg.arg) is leg:
            del self.legs[leg.arg]
        port, leg.port = leg.port, None
        if port is not None:
            port.destroy()
            port.link.close()

    def shutdown(self) -> None:
        """Drop every port (libDestroy aborts while one is referenced)."""
        for leg in list(self.legs.values()):
            self.forget(leg)
