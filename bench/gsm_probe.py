"""A pjsua2 process placing up to 4 calls that measure audio round trips (for bench_gsm_bridge).

Each call gets a conference port that sends a 100 ms 1 kHz burst every second and watches
the call's incoming audio for it coming back (the far end loops audio back). The round
trip is counted in bridge ticks (20 ms) between the tick the burst left and the tick it
came back, plus the onset's sample offset inside the returning frame. Commands on stdin
(JSON lines): {"cmd": "call", "to": "030..."}; {"cmd": "report"} prints
{"ev": "report", "calls": [{"rtt_ms": [...], "sent": n, "heard": n}]}; {"cmd": "quit"}.

    python bench/gsm_probe.py --users 2001,2002 --password-prefix pw- --proxy-port 5060
"""

from __future__ import annotations

import argparse
import array
import gc
import json
import math
import os
import select
import sys
import time
from pathlib import Path

import pjsua2 as pj

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.media.pcm import vector_bytes

RATE = 8000
FRAME = 320
BURST_FRAMES = 5
PERIOD_FRAMES = 50
THRESHOLD = 3000
BURST = b"".join(
    int(8000 * math.sin(2 * math.pi * 1000 * n / RATE)).to_bytes(2, "little", signed=True)
    for n in range(FRAME // 2 * BURST_FRAMES)
)
SILENCE = bytes(FRAME)


def emit(**event: object) -> None:
    sys.stdout.write("@ev " + json.dumps(event) + "\n")
    sys.stdout.flush()


class Probe(pj.AudioMediaPort):
    """Sends bursts and times their return (callbacks on the bridge clock thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.tick = 0
        self.sent_tick: int | None = None
        self.sent = self.heard = 0
        self.rtt_ms: list[float] = []

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        self.tick += 1
        phase = self.tick % PERIOD_FRAMES
        if phase == 0:
            self.sent_tick = self.tick
            self.sent += 1
        data = BURST[phase * FRAME : (phase + 1) * FRAME] if phase < BURST_FRAMES else SILENCE
        frame.buf = pj.ByteVector(data)
        frame.size = FRAME
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        if self.sent_tick is None or frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO:
            return
        samples = array.array("h", vector_bytes(frame.buf))
        for index, value in enumerate(samples):
            if abs(value) > THRESHOLD:
                ticks = self.tick - self.sent_tick
                self.rtt_ms.append(ticks * 20.0 + index * 1000.0 / RATE)
                self.heard += 1
                self.sent_tick = None
                return


class Call(pj.Call):
    def __init__(self, acc: pj.Account) -> None:
        super().__init__(acc)
        self.probe: Probe | None = None

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        emit(ev="state", state=info.stateText, code=info.lastStatusCode)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            if self.probe is not None:
                return
            audio = self.getAudioMedia(index)
            self.probe = Probe()
            fmt = pj.MediaFormatAudio()
            fmt.init(pj.PJMEDIA_FORMAT_PCM, RATE, 1, 20000, 16)
            self.probe.createPort("probe", fmt)
            self.probe.startTransmit(audio)
            audio.startTransmit(self.probe)


class Account(pj.Account):
    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        emit(ev="reg", code=prm.code)


def endpoint() -> pj.Endpoint:
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    cfg.medConfig.clockRate = RATE
    cfg.medConfig.sndClockRate = RATE
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    transport = pj.TransportConfig()
    transport.boundAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    ep.libStart()
    ep.audDevManager().setNullDev()
    for codec in ep.codecEnum2():
        ep.codecSetPriority(codec.codecId, 255 if codec.codecId.startswith("PCMU/8000") else 0)
    return ep


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", required=True)
    parser.add_argument("--password-prefix", required=True)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--proxy-port", type=int, required=True)
    args = parser.parse_args()
    ep = endpoint()
    accounts = []
    for user in args.users.split(","):
        cfg = pj.AccountConfig()
        cfg.idUri = f"sip:{user}@{args.domain}"
        cfg.regConfig.registrarUri = f"sip:127.0.0.1:{args.proxy_port}"
        cfg.sipConfig.proxies.append(f"sip:127.0.0.1:{args.proxy_port};lr")
        cfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        password = args.password_prefix + user
        cfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
        account = Account()
        account.create(cfg)
        accounts.append(account)
    calls: list[Call] = []
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    buffered = b""
    running = True
    deadline = time.monotonic() + 600
    while running and time.monotonic() < deadline:
        ep.libHandleEvents(10)
        if not select.select([stdin], [], [], 0)[0]:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            break
        buffered += chunk
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            cmd = json.loads(line)
            if cmd["cmd"] == "call":
                call = Call(accounts[len(calls)])
                call.makeCall(f"sip:{cmd['to']}@{args.domain}", pj.CallOpParam(True))
                calls.append(call)
            elif cmd["cmd"] == "report":
                emit(ev="report", calls=[
                    {"rtt_ms": list(c.probe.rtt_ms), "sent": c.probe.sent, "heard": c.probe.heard}
                    if c.probe else {"rtt_ms": [], "sent": 0, "heard": 0} for c in calls
                ])  # fmt: skip
            elif cmd["cmd"] == "quit":
                running = False
    ep.hangupAllCalls()
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        ep.libHandleEvents(10)
    for call in calls:
        call.probe = None
    calls.clear()
    for account in accounts:
        account.shutdown()
    accounts.clear()
    gc.collect()
    ep.libDestroy()


if __name__ == "__main__":
    main()
