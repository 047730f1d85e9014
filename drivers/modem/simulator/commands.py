"""AT commands a simulated modem understands, dispatched from a table of patterns.

Each handler names the clause or vendor manual section it imitates. Unknown commands get the
dialect's answer (``ERROR``, or Huawei's ``COMMAND NOT SUPPORT``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from drivers.modem import gsm7, pdu
from drivers.modem.errors import RemoteProtocolError
from drivers.modem.simulator.farend import FarEndModem
from drivers.modem.simulator.modem import Reply

Handler = Callable[["SimulatedModem", re.Match[str], str], Reply]
_OK: Reply = ([], "OK")
_SIM_COMMANDS = ("AT+CPIN?", "AT+CIMI", "AT+CNUM", "AT+QCCID", "AT+CCID", "AT+CICCID", "AT^ICCID?")


class SimulatedModem(FarEndModem):
    """A complete simulated modem: core, far end and command set."""

    def dispatch(self, line: str) -> Reply:
        """Run one command line; None when the reply is sent later (SMS prompt)."""
        upper = line.upper()
        if upper.startswith(_SIM_COMMANDS) and self.faults.hit("sim_busy"):
            return self.error(14)
        for pattern, handler in _TABLE:
            match = pattern.fullmatch(upper)
            if match is not None:
                return handler(self, match, line)
        return [], self.dialect.unknown_result

    def submit(self, payload: str, length: int) -> tuple[list[str], str]:
        """27.005 §3.5.1: the PDU after the prompt; +CMGS: <mr> on success. The length given
        to AT+CMGS must count the TPDU octets, without the SMSC part."""
        try:
            smsc_octets = int(payload[:2], 16) + 1
            if len(payload) // 2 - smsc_octets != length:
                return [], "+CMS ERROR: 304"
            part = pdu.decode_submit(payload)
        except (ValueError, RemoteProtocolError):
            return [], "+CMS ERROR: 304"
        self.record.sent_sms.append((part.number, part.text))
        return [f"+CMGS: {len(self.record.sent_sms) % 256}"], "OK"

    def sim_gate(self) -> Reply:
        """The CME error a SIM command gets while the SIM is not usable."""
        state = self.sim_state
        if state == "ABSENT":
            return self.error(10)
        if state == "BUSY":
            return self.error(14)
        if state == "PIN":
            return self.error(11)
        return None


def _ok(_m: SimulatedModem, _match: re.Match[str], _line: str) -> Reply:
    return _OK


def _echo(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    m.echo = match.group(1) != "0"
    return _OK


def _atz(m: SimulatedModem, _match: re.Match[str], _line: str) -> Reply:
    m.echo, m.cmee = True, 0
    return _OK


def _cmee(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    m.cmee = int(match.group(1))
    return _OK


def _identity(field: str) -> Handler:
    def handler(m: SimulatedModem, _match: re.Match[str], _line: str) -> Reply:
        values = {
            "cgmi": m.dialect.manufacturer,
            "cgmm": m.dialect.model,
            "cgmr": m.dialect.revision,
            "cgsn": m.imei,
        }
        return [values[field]], "OK"

    return handler


def _cpin_read(m: SimulatedModem, _match: re.Match[str], _line: str) -> Reply:
    if m.sim_state == "PIN":
        return ["+CPIN: SIM PIN"], "OK"
    return m.sim_gate() or (["+CPIN: READY"], "OK")


def _cpin_set(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    if m.sim_state != "PIN":
        return m.error(3)
    if match.group(1) != m.sim.pin:
        return m.error(16)
    m.sim.pin = None
    m.sim_state = "BUSY"
    m.after(0.05, m.sim_ready)
    return _OK


def _sim_value(field: str) -> Handler:
    def handler(m: SimulatedModem, _match: re.Match[str], line: str) -> Reply:
        gate = m.sim_gate()
        if gate is not None:
            return gate
        if field == "imsi":
            return [m.sim.imsi], "OK"
        if field == "cnum":
            kind = 145 if m.sim.number.startswith("+") else 129
            return ([f'+CNUM: "","{m.sim.number}",{kind}'] if m.sim.number else []), "OK"
        if m.dialect.iccid_command not in ("AT+CCID", line.upper()):
            return [], m.dialect.unknown_result
        return [f"{m.dialect.iccid_prefix}{m.sim.iccid}"], "OK"

    return handler


def _set_flag(flag: str) -> Handler:
    def handler(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
        if match.group(1) == "0":
            m.flags.discard(flag)
        else:
            m.flags.add(flag)
        return _OK

    return handler


def _vendor_flag(vendor: str, flag: str) -> Handler:
    def handler(m: SimulatedModem, match: re.Match[str], line: str) -> Reply:
        if m.dialect.vendor != vendor:
            return [], m.dialect.unknown_result
        return _set_flag(flag)(m, match, line)

    return handler


def _reg_read(prefix: str) -> Handler:
    def handler(m: SimulatedModem, _match: re.Match[str], _line: str) -> Reply:
        if prefix == "CEREG" and not m.dialect.lte:
            return [], m.dialect.unknown_result
        n = 2 if prefix.lower() in m.flags else 0
        stat = 1 if m.registered else (2 if m.sim_state == "READY" and m.radio else 0)
        act = 7 if m.dialect.lte else 2
        tail = f',"1A2B","01A2B3C4",{act}' if n == 2 else ""
        return [f"+{prefix}: {n},{stat}{tail}"], "OK"

    return handler


def _cops(m: SimulatedModem, _match: re.Match[str], _line: str) -> Reply:
    if not m.registered:
        return ["+COPS: 0"], "OK"
    return [f'+COPS: 0,0,"callmesh-net",{7 if m.dialect.lte else 2}'], "OK"


def _csq(m: SimulatedModem, _match: re.Match[str], _line: str) -> Reply:
    rssi = 18 + m.faults.rng.randrange(6) if m.registered else 99
    return [f"+CSQ: {rssi},99"], "OK"


def _cfun(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    if match.group(2) == "1":
        m.reset()
        return _OK
    m.radio = match.group(1) != "0"
    if m.radio:
        m.after(m.timing["register"], m.register)
    else:
        m.registered = False
        m.announce_registration()
    return _OK


def _dial(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    m.record.dialled.append(match.group(1))
    if not m.registered:
        return [], "NO CARRIER"
    m.place_call(match.group(1))
    return _OK


def _answer(m: SimulatedModem, _match: re.Match[str], _line: str) -> Reply:
    return _OK if m.answer_call() else ([], "NO CARRIER")


def _hangup(m: SimulatedModem, _match: re.Match[str], _line: str) -> Reply:
    m.local_release()
    return _OK


def _qhup(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    idx = int(match.group(2)) if match.group(2) else None
    m.local_release(idx, int(match.group(1)))
    return _OK


def _clcc(m: SimulatedModem, _match: re.Match[str], _line: str) -> Reply:
    lines = ['+CLCC: 1,0,0,1,0,"",128'] if m.dialect.lte and m.registered else []
    for call in m.calls.values():
        stat = {"active": 0, "dialing": 2, "alerting": 3, "incoming": 4}[call.state]
        kind = 145 if call.number.startswith("+") else 129
        lines.append(f'+CLCC: {call.idx},{int(call.incoming)},{stat},0,0,"{call.number}",{kind}')
    return lines, "OK"


def _vts(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    if not any(c.state == "active" for c in m.calls.values()):
        return m.error(3)
    m.record.dtmf_sent.append(match.group(1))
    return _OK


def _pcm(vendor: str, needs_call: bool) -> Handler:
    def handler(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
        if m.dialect.vendor != vendor:
            return [], m.dialect.unknown_result
        on = match.group(1) != "0"
        if on and needs_call and not any(c.state == "active" for c in m.calls.values()):
            return [], "ERROR"  # SIM7600 accepts CPCMREG=1 only during a connected call
        m.pcm_on = on
        return _OK

    return handler


def _cpcmfrm(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    m.sample_rate = 16000 if match.group(1) == "1" else 8000
    return _OK


def _cmgs(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    gate = m.sim_gate()
    if gate is not None:
        return gate
    m.expect_payload(int(match.group(1)))
    return None


def _cmgr(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    stored = m.storage.get(int(match.group(1)))
    if stored is None:
        return [], "+CMS ERROR: 321"
    return [f"+CMGR: 0,,{len(stored) // 2 - 1 - int(stored[:2], 16)}", stored], "OK"


def _cmgd(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    m.storage.pop(int(match.group(1)), None)
    return _OK


def _cusd(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    request = match.group(1)
    packed = m.dialect.vendor == "huawei"
    code = gsm7.unpack_hex(request) if packed else request
    reply = m.ussd_replies.get(code, f"Balance: 12.34 ({code})")
    text = gsm7.pack_hex(reply) if packed else reply
    m.after(0.2, lambda: m.urc(f'+CUSD: 0,"{text}",15'))
    return _OK


def _qdsim(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    slot = int(match.group(1))
    if not m.dialect.dual_sim or slot >= len(m.sims):
        return m.error(4)
    m.switch_sim(slot)
    return _OK


def _qdsim_read(m: SimulatedModem, _match: re.Match[str], _line: str) -> Reply:
    return ([f"+QDSIM: {m.slot}"], "OK") if m.dialect.dual_sim else ([], "ERROR")


def _chld(m: SimulatedModem, match: re.Match[str], _line: str) -> Reply:
    # chan_dongle's E1550 bug: AT+CHLD=11 before ^CONF makes the dongle ignore everything.
    early = any(c.state == "dialing" for c in m.calls.values())
    if m.dialect.vendor == "huawei" and match.group(1) == "11" and early:
        m.wedged = True
        return None
    return _OK


def _only(vendor: str, handler: Handler) -> Handler:
    def wrapped(m: SimulatedModem, match: re.Match[str], line: str) -> Reply:
        if m.dialect.vendor != vendor:
            return [], m.dialect.unknown_result
        return handler(m, match, line)

    return wrapped


def _ddsetex(m: SimulatedModem, _match: re.Match[str], _line: str) -> Reply:
    m.pcm_on = True
    return _OK


def _cvoice_read(_m: SimulatedModem, _match: re.Match[str], _line: str) -> Reply:
    return ["^CVOICE:0,8000,16,20"], "OK"


def _huawei_dtmf(m: SimulatedModem, match: re.Match[str], line: str) -> Reply:
    return _vts(m, match, line)


_TABLE: list[tuple[re.Pattern[str], Handler]] = [
    (re.compile(p), h)
    for p, h in (
        (r"AT", _ok),
        (r"ATE([01]?)", _echo),
        (r"ATZ", _atz),
        (r"ATI", _identity("cgmm")),
        (r"AT\+CMEE=([012])", _cmee),
        (r"AT\+CGMI", _identity("cgmi")),
        (r"AT\+CGMM", _identity("cgmm")),
        (r"AT\+CGMR", _identity("cgmr")),
        (r"AT\+CGSN", _identity("cgsn")),
        (r"AT\+CPIN\?", _cpin_read),
        (r'AT\+CPIN="?(\d+)"?', _cpin_set),
        (r"AT\+CIMI", _sim_value("imsi")),
        (r"AT\+CNUM", _sim_value("cnum")),
        (r"AT(?:\+QCCID|\+CCID|\+CICCID|\^ICCID\?)", _sim_value("iccid")),
        (r"AT\+CREG=([012])", _set_flag("creg")),
        (r"AT\+CEREG=([012])", _set_flag("cereg")),
        (r"AT\+CREG\?", _reg_read("CREG")),
        (r"AT\+CEREG\?", _reg_read("CEREG")),
        (r"AT\+COPS\?", _cops),
        (r"AT\+COPS=.*", _ok),
        (r"AT\+CSQ", _csq),
        (r"AT\+CFUN=([01])(?:,([01]))?", _cfun),
        (r"AT\+CLIP=[01]|AT\+CRC=[01]|AT\+CMGF=0|AT\+CSCS=.*|AT\+COLP=[01]", _ok),
        (r"AT\+CNMI=([0-3]).*", _set_flag("cnmi")),
        (r"ATD([+0-9*#]+);", _dial),
        (r"ATA", _answer),
        (r"ATH0?|AT\+CHUP", _hangup),
        (r"AT\+QHUP=(\d+)(?:,(\d+))?", _qhup),
        (r"AT\+CLCC", _clcc),
        (r"AT\+CLCC=([01])", _vendor_flag("simcom", "clcc")),
        (r'AT\+VTS="?([0-9*#A-D])"?', _vts),
        (r"AT\+QPCMV=([01])(?:,\d)?", _pcm("quectel", needs_call=False)),
        (r"AT\+CPCMREG=([01])(?:,\d)?", _pcm("simcom", needs_call=True)),
        (r"AT\+CPCMFRM=([01])", _only("simcom", _cpcmfrm)),
        (r'AT\+QINDCFG="CCINFO",([01])(?:,[01])?', _vendor_flag("quectel", "ccinfo")),
        (r"AT\^DSCI=([01])", _vendor_flag("quectel", "dsci")),
        (r"AT\+QTONEDET=([01])", _vendor_flag("quectel", "tonedet")),
        (r"AT\+QSIMSTAT=([01])", _vendor_flag("quectel", "qsimstat")),
        (r"AT\+QGPSCFG=.*|AT\+QAUDMOD=\d|AT\+QURCCFG=.*", _only("quectel", _ok)),
        (r"AT\+DDET=([01])", _vendor_flag("simcom", "ddet")),
        (r"AT\+QDSIM=(\d)", _qdsim),
        (r"AT\+QDSIM\?", _qdsim_read),
        (r"AT\+CMGS=(\d+)", _cmgs),
        (r"AT\+CMGR=(\d+)", _cmgr),
        (r"AT\+CMGD=(\d+)(?:,\d)?", _cmgd),
        (r'AT\+CUSD=1,"([^"]*)"(?:,\d+)?', _cusd),
        (r"AT\+CHLD=(\d+)", _chld),
        (r"AT\^DDSETEX=2", _only("huawei", _ddsetex)),
        (r"AT\^CVOICE=0", _only("huawei", _ok)),
        (r"AT\^CVOICE\?", _only("huawei", _cvoice_read)),
        (r"AT\^DTMF=\d+,([0-9*#A-D])", _only("huawei", _huawei_dtmf)),
        (r"AT\^CURC=[01]|AT\^U2DIAG=\d+", _only("huawei", _ok)),
    )
]
