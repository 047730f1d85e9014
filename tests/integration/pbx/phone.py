"""A pjsua2 test phone in its own process, driven by JSON lines on stdin.

Commands: {"cmd": "call", "to": "1002"[, "headers": {"Name": "value"}]},
{"cmd": "answer"}, {"cmd": "busy"},
{"cmd": "early"} (183 with SDP), {"cmd": "hold"}, {"cmd": "unhold"},
{"cmd": "xfer", "to": "1003"} (blind transfer by REFER), {"cmd": "consult", "to": "1003"}
(hold the current call, call 1003), {"cmd": "xfer_attended"} (REFER the held call to the
consulted party with Replaces), {"cmd": "hangup"},
{"cmd": "dtmf", "digits": "12"}, {"cmd": "quit"}.
An incoming call rings (180) until "answer"; one whose INVITE asks for auto-answer
(Call-Info ...;answer-after=0) is answered at once, as a desk phone that allows it.
Events on stdout (prefixed "@ev "): {"ev": "reg", "code": 200}, {"ev": "incoming",
"remote": '"Alice" <sip:1001@...>', "auto_answer": false},
{"ev": "state", "state": "CONFIRMED"|"DISCONNECTED", "code": ..., "reason": phrase,
"reason_header": the Reason header of the reply that ended it, or ""}, {"ev": "media",
"status": "active"|"local-hold"|"remote-hold", "state": ...}, {"ev": "dtmf", "digit": "1"},
{"ev": "mwi", "waiting": true} (an unsolicited message-summary NOTIFY).
A call this phone makes because it was transferred (REFER), and a call that replaced
its current one (INVITE with Replaces), become the phone's current call; their events
are reported like any other ({"ev": "transferring", "to": uri}, {"ev": "replaced"}).
With --sip-port the phone listens on that port and does not register: it stands for a
SIP trunk's far end (a carrier), answering what the PBX sends it.
Audio: plays a tone of --tone Hz into every call and records what it hears (from every
call, mixed) to --record.
SIP callbacks run inside libHandleEvents() on the main thread (threadCnt=0).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import select
import sys
import time

import pjsua2 as pj

MEDIA_STATUS = {
    pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local-hold",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote-hold",
    pj.PJSUA_CALL_MEDIA_NONE: "none",
}


def _reason_header(event: pj.SipEvent) -> str:
    """The Reason header of the SIP message an event received, or ""."""
    if event.type != pj.PJSIP_EVENT_TSX_STATE:
        return ""
    state = event.body.tsxState
    if state.type != pj.PJSIP_EVENT_RX_MSG:
        return ""
    for line in state.src.rdata.wholeMsg.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "reason":
            return str(value).strip()
    return ""


def emit(**event: object) -> None:
    sys.stdout.write("@ev " + json.dumps(event) + "\n")
    sys.stdout.flush()


class Phone:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.call: Call | None = None
        self.tone: pj.ToneGenerator | None = None
        self.recorder: pj.AudioMediaRecorder | None = None
        self.calls: list[Call] = []
        self.held: Call | None = None


class Call(pj.Call):
    def __init__(self, phone: Phone, acc: pj.Account, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.phone = phone
        self.acc = acc
        self.connected = False
        phone.calls.append(self)

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        new = Call(self.phone, self.acc)
        prm.newCall = new
        self.phone.call = new
        emit(ev="transferring", to=prm.dstUri)

    def onCallReplaced(self, prm: pj.OnCallReplacedParam) -> None:
        new = Call(self.phone, self.acc, prm.newCallId)
        prm.newCall = new
        self.phone.call = new
        emit(ev="replaced")

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        emit(ev="state", state=info.stateText, code=info.lastStatusCode,
             reason=info.lastReason, reason_header=_reason_header(prm.e))  # fmt: skip

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for i, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            emit(ev="media", status=MEDIA_STATUS.get(media.status, "other"), state=info.stateText)
            if media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            audio = self.getAudioMedia(i)
            phone = self.phone
            if self.connected:
                continue
            self.connected = True
            if phone.tone is None:
                phone.tone = pj.ToneGenerator()
                phone.tone.createToneGenerator(8000, 1)
                desc = pj.ToneDesc()
                desc.freq1 = phone.args.tone
                desc.freq2 = phone.args.tone
                desc.on_msec = 10000
                desc.off_msec = 0
                descs = pj.ToneDescVector()
                descs.append(desc)
                phone.tone.play(descs, True)
            phone.tone.startTransmit(audio)
            if phone.recorder is None and phone.args.record:
                phone.recorder = pj.AudioMediaRecorder()
                phone.recorder.createRecorder(phone.args.record)
            if phone.recorder is not None:
                audio.startTransmit(phone.recorder)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        emit(ev="dtmf", digit=prm.digit)


class Account(pj.Account):
    def __init__(self, phone: Phone) -> None:
        super().__init__()
        self.phone = phone

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        emit(ev="reg", code=prm.code)

    def onMwiInfo(self, prm: pj.OnMwiInfoParam) -> None:
        waiting = "messages-waiting: yes" in prm.rdata.wholeMsg.lower()
        emit(ev="mwi", waiting=waiting)

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = Call(self.phone, self, prm.callId)
        self.phone.call = call
        auto = "answer-after=0" in prm.rdata.wholeMsg.lower()
        emit(ev="incoming", remote=call.getInfo().remoteUri, auto_answer=auto)
        answer = pj.CallOpParam()
        answer.statusCode = 200 if auto else 180
        call.answer(answer)


def command(phone: Phone, acc: Account, line: str) -> bool:
    cmd = json.loads(line)
    name = cmd["cmd"]
    try:
        if name == "call":
            phone.call = Call(phone, acc)
            prm = pj.CallOpParam(True)
            for header_name, value in dict(cmd.get("headers") or {}).items():
                header = pj.SipHeader()
                header.hName, header.hValue = str(header_name), str(value)
                prm.txOption.headers.append(header)
            phone.call.makeCall(f"sip:{cmd['to']}@{phone.args.domain}", prm)
        elif name in ("answer", "busy", "early") and phone.call is not None:
            prm = pj.CallOpParam()
            prm.statusCode = {"answer": 200, "busy": 486, "early": 183}[name]
            phone.call.answer(prm)
        elif name == "hold" and phone.call is not None:
            phone.call.setHold(pj.CallOpParam(True))
        elif name == "unhold" and phone.call is not None:
            prm = pj.CallOpParam(True)
            prm.opt.flag = pj.PJSUA_CALL_UNHOLD
            phone.call.reinvite(prm)
        elif name == "consult" and phone.call is not None:
            phone.call.setHold(pj.CallOpParam(True))
            phone.held = phone.call
            phone.call = Call(phone, acc)
            phone.call.makeCall(f"sip:{cmd['to']}@{phone.args.domain}", pj.CallOpParam(True))
        elif name == "xfer_attended" and phone.call is not None and phone.held is not None:
            phone.held.xferReplaces(phone.call, pj.CallOpParam(True))
        elif name == "xfer" and phone.call is not None:
            phone.call.xfer(f"sip:{cmd['to']}@{phone.args.domain}", pj.CallOpParam(True))
        elif name == "hangup" and phone.call is not None:
            phone.call.hangup(pj.CallOpParam())
        elif name == "dtmf" and phone.call is not None:
            phone.call.dialDtmf(cmd["digits"])
        elif name == "quit":
            return False
    except pj.Error as err:
        emit(ev="error", info=err.info())
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    for option in ("--user", "--password", "--domain", "--record"):
        parser.add_argument(option, default="")
    parser.add_argument("--proxy-host", default="127.0.0.1")
    parser.add_argument("--bind-host", default="", help="default: the proxy host")
    parser.add_argument("--proxy-port", type=int, required=True)
    parser.add_argument("--tone", type=int, default=440)
    parser.add_argument("--rtp-port", type=int, default=0)
    parser.add_argument("--sip-port", type=int, default=0,
                        help="listen here and do not register: a SIP trunk's far end")  # fmt: skip
    args = parser.parse_args()
    bind = args.bind_host or args.proxy_host
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    ep.libInit(cfg)
    transport = pj.TransportConfig()
    transport.port = args.sip_port
    transport.boundAddress = bind
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    ep.libStart()
    ep.audDevManager().setNullDev()
    for codec in ep.codecEnum2():
        priority = 255 if codec.codecId.startswith("PCMU/8000") else 0
        ep.codecSetPriority(codec.codecId, priority)
    phone = Phone(args)
    acc_cfg = pj.AccountConfig()
    acc_cfg.idUri = f"sip:{args.user}@{args.domain}"
    if not args.sip_port:
        acc_cfg.regConfig.registrarUri = f"sip:{args.proxy_host}:{args.proxy_port}"
    acc_cfg.regConfig.timeoutSec = 300
    acc_cfg.sipConfig.proxies.append(f"sip:{args.proxy_host}:{args.proxy_port};lr")
    acc_cfg.mediaConfig.transportConfig.port = args.rtp_port
    acc_cfg.mediaConfig.transportConfig.boundAddress = bind
    acc_cfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
    acc = Account(phone)
    acc.create(acc_cfg)
    emit(ev="ready")
    deadline = time.monotonic() + 120
    running = True
    while running and time.monotonic() < deadline:
        ep.libHandleEvents(10)
        if select.select([sys.stdin], [], [], 0)[0]:
            line = sys.stdin.readline()
            running = bool(line) and command(phone, acc, line)
    ep.hangupAllCalls()
    for _ in range(20):
        ep.libHandleEvents(10)
    phone.call = phone.held = None
    phone.calls.clear()
    phone.tone = None
    phone.recorder = None
    acc.shutdown()
    del acc
    gc.collect()
    ep.libDestroy()
    os._exit(0)


if __name__ == "__main__":
    main()
