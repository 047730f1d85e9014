"""The media worker's IVR handler: it executes what the appliance's flow engine decides.

A call for ``ivr-<flow>`` is answered and, once its audio is up, reported as an ``ivr``
event ``start`` (id: the SIP Call-ID, flow, caller; ``tag``: the originate id of a call
the worker placed with ``ivr``, else null). From then on the worker only acts on
commands and reports what happened; which node comes next, timeouts, retries and
variables are the business of ``appliance.ivr``:

    ivr-play       id, prompt{file | tone_hz, on_ms, off_ms, seconds}
                                     play it (replacing what plays); ``played`` at its end
    ivr-stop       id                stop playing
    ivr-record     id, path, max_s, silence_s
                                     record the caller to ``path`` (WAV); ``silence_s`` of
                                     quiet after speech, or ``max_s``, closes it
    ivr-record-stop id               close the recording; ``recorded`` (path, seconds)
    ivr-transfer   id, to            REFER the caller to ``to`` (via Kamailio), then leave
    ivr-hangup     id                end the call

Events (``ev`` = ``ivr``, ``state``): start, digit (digit), played, recorded (path,
seconds: sent once the WAV file is complete, also when the caller hung up while being
recorded, then followed by ended), ended. Runs on the worker's main thread only.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pjsua2 as pj

from drivers.media.protocol import (
    Emit,
    IvrCommand,
    IvrEvent,
    IvrHangup,
    IvrPlay,
    IvrRecord,
    IvrRecordStop,
    IvrStop,
    IvrTransfer,
)

if TYPE_CHECKING:
    from drivers.media.worker import Leg, Worker

log = logging.getLogger("callmesh.media.ivr")

_USER = re.compile(r"sip:([^@;>\s]+)@")
SPEECH_LEVEL = 8
WAV_HEADER = 44
BYTES_PER_S = 16000
FINALIZE_S = 2.0


@dataclass
class Closing:
    """A recording being finalized; ``ended``: the call is gone, report that afterwards."""

    path: Path
    deadline: float
    ended: bool = False


@dataclass
class Recording:
    """A recorder attached to an IVR call."""

    recorder: pj.AudioMediaRecorder
    path: str
    started: float
    max_s: float
    silence_s: float
    heard: bool = False
    quiet_since: float = 0.0


class IvrLegs:
    """IVR calls of one worker, keyed by SIP Call-ID."""

    def __init__(self, worker: Worker, emit: Emit) -> None:
        self.worker = worker
        self.emit = emit
        self.legs: dict[str, Leg] = {}
        self.recordings: dict[str, Recording] = {}
        self.closing: dict[str, Closing] = {}

    def media(self, leg: Leg) -> None:
        """The call's audio is up: hand it to the appliance."""
        info = leg.call.getInfo()
        key = info.callIdString
        if key in self.legs:
            return
        self.legs[key] = leg
        match = _USER.search(info.remoteUri)
        self.emit(IvrEvent(key, "start", flow=leg.arg, tag=leg.tag,
                           caller=match.group(1) if match else ""))  # fmt: skip

    def digit(self, leg: Leg, digit: str) -> None:
        """A DTMF digit from the caller."""
        key = self._key(leg)
        if key is not None and not leg.refer_to:
            self.emit(IvrEvent(key, "digit", digit=digit))

    def played(self, leg: Leg) -> None:
        """The prompt reached its end (a file's end or a tone's duration)."""
        key = self._key(leg)
        if key is not None:
            self.worker.stop_source(leg)
            self.emit(IvrEvent(key, "played"))

    def command(self, cmd: IvrCommand) -> None:
        """Execute one ``ivr-*`` command; commands for calls that ended are ignored."""
        key = cmd.id
        leg = self.legs.get(key)
        if leg is None or leg.audio is None:
            return
        if isinstance(cmd, IvrPlay):
            self.worker.stop_source(leg)
            self.worker.play(leg, cmd.prompt, loop=False)
        elif isinstance(cmd, IvrStop):
            self.worker.stop_source(leg)
            leg.deadline = None
        elif isinstance(cmd, IvrRecord):
            self._record(key, leg, cmd.path, cmd.max_s, cmd.silence_s)
        elif isinstance(cmd, IvrRecordStop):
            self._close(key, leg)
        elif isinstance(cmd, IvrTransfer):
            self._transfer(key, leg, cmd.to)
        elif isinstance(cmd, IvrHangup):
            leg.call.hangup(pj.CallOpParam())

    def tick(self, now: float) -> None:
        """Close recordings that ran their length or fell silent after speech; report the
        closed ones once their WAV file is complete."""
        for key, done in list(self.closing.items()):
            if _complete(done.path) or now >= done.deadline:
                del self.closing[key]
                seconds = max(0, _size(done.path) - WAV_HEADER) / BYTES_PER_S
                self.emit(IvrEvent(key, "recorded", path=str(done.path),
                                   seconds=round(seconds, 2)))  # fmt: skip
                if done.ended:
                    self.emit(IvrEvent(key, "ended"))
        for key, rec in list(self.recordings.items()):
            leg = self.legs[key]
            if leg.audio is None:
                continue
            if leg.audio.getRxLevel() >= SPEECH_LEVEL:
                rec.heard, rec.quiet_since = True, now
            quiet = rec.silence_s > 0 and rec.heard and now - rec.quiet_since >= rec.silence_s
            if quiet or now - rec.started >= rec.max_s:
                self._close(key, leg)

    def forget(self, leg: Leg) -> None:
        """The call ended: close its recording and tell the appliance."""
        key = self._key(leg)
        if key is None:
            return
        if key in self.recordings:
            self._close(key, leg)
        del self.legs[key]
        if key in self.closing:
            self.closing[key].ended = True
        else:
            self.emit(IvrEvent(key, "ended"))

    def shutdown(self) -> None:
        """Drop every pjsua2 reference (before libDestroy)."""
        self.recordings.clear()
        self.closing.clear()
        self.legs.clear()

    def _key(self, leg: Leg) -> str | None:
        return next((k for k, v in self.legs.items() if v is leg), None)

    def _record(self, key: str, leg: Leg, path: str, max_s: float, silence_s: float) -> None:
        if key in self.recordings:
            return
        self.worker.stop_source(leg)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(path)
        assert leg.audio is not None
        leg.audio.startTransmit(recorder)
        now = time.monotonic()
        self.recordings[key] = Recording(recorder, path, now, max_s, silence_s, quiet_since=now)

    def _close(self, key: str, leg: Leg) -> None:
        rec = self.recordings.pop(key, None)
        if rec is None:
            return
        if leg.audio is not None:
            leg.audio.stopTransmit(rec.recorder)
        # Dropping the recorder destroys it; the conference bridge removes its port on the
        # clock thread, and only then is the WAV flushed and its header's sizes written.
        self.closing[key] = Closing(Path(rec.path), time.monotonic() + FINALIZE_S)

    def _transfer(self, key: str, leg: Leg, to: str) -> None:
        if key in self.recordings:
            self._close(key, leg)
        self.worker.stop_source(leg)
        leg.deadline = None
        leg.refer_to = f"sip:{to}@{self.worker.config.domain}"
        leg.call.xfer(leg.refer_to, pj.CallOpParam(True))


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else WAV_HEADER


def _complete(path: Path) -> bool:
    """Whether the WAV's RIFF size covers the whole file (written when it is closed)."""
    try:
        with path.open("rb") as wav:
            head = wav.read(8)
    except OSError:
        return False
    return len(head) == 8 and int.from_bytes(head[4:], "little") + 8 == _size(path) > WAV_HEADER
