"""Modem models as data: dialect, URCs, voice routing, SIM handling.

A profile is chosen from ``AT+CGMI`` / ``AT+CGMM`` (:func:`select_profile`) or named in config.
Adding a modem means adding a row here, not a branch in the driver. Facts per vendor:
Huawei E1550/E173 route voice to a separate tty with ``AT^DDSETEX=2`` after the call is up and
report calls with ``^ORIG/^CONF/^CONN/^CEND``; Quectel EC2x needs ``AT+QPCMV=1,0`` before the
call, reports ``+QIND: "ccinfo"`` (older firmware only ``^DSCI``) and selects SIMs with
``AT+QDSIM``; SIMCom SIM7600 accepts ``AT+CPCMREG=1`` only while a call is active and
auto-reports ``+CLCC`` with stat 6 for released calls. The generic 27.007 profile polls
``AT+CLCC``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

from drivers.modem import urcs
from drivers.modem.errors import FeatureNotAvailable
from drivers.modem.protocol import BASE_URC_PREFIXES
from drivers.modem.urcs import CLCC_STATES, CallState, Decoder


@dataclass(frozen=True)
class VoiceSpec:
    """Where the PCM port is and which commands route audio to it."""

    interface: str
    sample_rate: int = 8000
    before_call: tuple[str, ...] = ()
    on_active: tuple[str, ...] = ()
    after_call: tuple[str, ...] = ()

    @property
    def frame_bytes(self) -> int:
        """Bytes in one 20 ms S16LE mono frame."""
        return self.sample_rate // 50 * 2


@dataclass(frozen=True)
class SimSlots:
    """Dual-SIM selection: the command sequence and how long re-registration may take."""

    count: int
    select: tuple[str, ...]
    settle_seconds: float = 60.0


@dataclass(frozen=True)
class ModemProfile:
    """Everything model-specific the driver needs."""

    name: str
    manufacturer: str
    model: str
    at_interface: str = "if02"
    voice: VoiceSpec | None = None
    init: tuple[tuple[str, ...], ...] = ()
    decoders: tuple[tuple[str, Decoder], ...] = urcs.BASE_DECODERS
    poll_calls: bool = False
    dtmf: str = "AT+VTS={digit}"
    hangup: str = "AT+CHUP"
    reject: str | None = None
    iccid: tuple[str, str] = ("AT+CCID", "+CCID:")
    ussd_packed: bool = False
    sim_slots: SimSlots | None = None
    reset_seconds: float = 11.0

    @property
    def urc_prefixes(self) -> tuple[str, ...]:
        """Line prefixes the protocol core treats as URCs."""
        extra = tuple(prefix for prefix, _ in self.decoders)
        return tuple(dict.fromkeys(BASE_URC_PREFIXES + extra + _BOOT_MARKERS))

    def decode(self, line: str, body: str = "") -> urcs.ModemUrc | None:
        """Decode a URC with the first matching decoder of this profile."""
        for prefix, decoder in self.decoders:
            if line.startswith(prefix):
                return decoder(line, body)
        return None


_BOOT_MARKERS = (
    "RDY",
    "^BOOT",
    "^RSSI",
    "^HCSQ",
    "^MODE",
    "^SRVST",
    "^SIMST",
    "+QUSIM:",
    "+QIND:",
    "*PSUTTZ",
    "DST:",
    "+CSQ:",
    "MISSED_CALL:",
    "VOICE CALL:",
)
_COMMON_INIT: tuple[tuple[str, ...], ...] = (
    ("AT+CLIP=1",),
    ("AT+CREG=2",),
    ("AT+CMGF=0",),
    ("AT+CNMI=2,1,0,0,0",),
)
_SIMCOM_CLCC: Mapping[int, CallState] = {**CLCC_STATES, 6: CallState.RELEASED}
_IGNORED: tuple[tuple[str, Decoder], ...] = tuple(
    (prefix, urcs.ignore) for prefix in ("^RSSI", "^HCSQ", "^MODE", "^SRVST", "^BOOT", "+CSQ:")
)

GENERIC = ModemProfile(
    name="generic",
    manufacturer=".*",
    model=".*",
    init=_COMMON_INIT,
    poll_calls=True,
)

HUAWEI_E1550 = ModemProfile(
    name="huawei-e1550",
    manufacturer="huawei",
    model="E1550",
    voice=VoiceSpec("if01", on_active=("AT^DDSETEX=2",)),
    init=(*_COMMON_INIT, ("AT^CVOICE=0", "AT^CVOICE?")),
    decoders=(
        *urcs.BASE_DECODERS,
        *((tag, urcs.huawei_call) for tag in ("^ORIG:", "^CONF:", "^CONN:", "^CEND:")),
        ("^SIMST", urcs.ready),
        *_IGNORED,
    ),
    dtmf="AT^DTMF={idx},{digit}",
    iccid=("AT^ICCID?", "^ICCID:"),
    ussd_packed=True,
    reset_seconds=15.0,
)
HUAWEI_E173 = dataclasses.replace(HUAWEI_E1550, name="huawei-e173", model="E173")

QUECTEL_EC25 = ModemProfile(
    name="quectel-ec25",
    manufacturer="quectel",
    model="EC25",
    voice=VoiceSpec("if01", before_call=("AT+QPCMV=1,0",), after_call=("AT+QPCMV=0",)),
    init=(
        *_COMMON_INIT,
        ("AT+CEREG=2",),
        ('AT+QINDCFG="ccinfo",1', "AT^DSCI=1"),
        ("AT+QTONEDET=1",),
        ("AT+QSIMSTAT=1",),
        ('AT+QGPSCFG="outport","none"',),
    ),
    decoders=(
        *urcs.BASE_DECODERS,
        ("+QIND:", urcs.qind),
        ("^DSCI:", urcs.dsci),
        ("+QTONEDET:", urcs.dtmf_ascii),
        ("+QSIMSTAT:", urcs.qsimstat),
        ("RDY", urcs.ready),
        ("+QUSIM:", urcs.ignore),
        *_IGNORED,
    ),
    dtmf='AT+VTS="{digit}"',
    reject="AT+QHUP={cause},{idx}",
    iccid=("AT+QCCID", "+QCCID:"),
    sim_slots=SimSlots(2, ("AT+CFUN=0", "AT+QDSIM={slot}", "AT+CFUN=1")),
)
QUECTEL_EC20 = dataclasses.replace(QUECTEL_EC25, name="quectel-ec20", model="EC20")

SIMCOM_SIM7600 = ModemProfile(
    name="simcom-sim7600",
    manufacturer="simcom",
    model="SIM7600",
    voice=VoiceSpec("if04", on_active=("AT+CPCMREG=1",), after_call=("AT+CPCMREG=0",)),
    init=(*_COMMON_INIT, ("AT+CEREG=2",), ("AT+CLCC=1",), ("AT+DDET=1",), ("AT+CPCMFRM=0",)),
    decoders=(
        *(d for d in urcs.BASE_DECODERS if d[0] != "+CLCC:"),
        ("+CLCC:", urcs.clcc_decoder(_SIMCOM_CLCC)),
        ("VOICE CALL:", urcs.simcom_voice_call),
        ("+RXDTMF:", urcs.dtmf_char),
        ("MISSED_CALL:", urcs.ignore),
        ("*PSUTTZ", urcs.ignore),
        ("DST:", urcs.ignore),
        *_IGNORED,
    ),
    iccid=("AT+CICCID", "+ICCID:"),
)
SIMCOM_SIM7600_WB = dataclasses.replace(
    SIMCOM_SIM7600,
    name="simcom-sim7600-16k",
    voice=dataclasses.replace(SIMCOM_SIM7600.voice or VoiceSpec("if04"), sample_rate=16000),
    init=(*SIMCOM_SIM7600.init[:-1], ("AT+CPCMFRM=1",)),
)

PROFILES: Mapping[str, ModemProfile] = {
    p.name: p
    for p in (
        HUAWEI_E1550,
        HUAWEI_E173,
        QUECTEL_EC25,
        QUECTEL_EC20,
        SIMCOM_SIM7600,
        SIMCOM_SIM7600_WB,
        GENERIC,
    )
}


def get_profile(name: str) -> ModemProfile:
    """The profile called ``name``."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise FeatureNotAvailable(f"unknown modem profile {name!r}; known: {known}") from None


def select_profile(manufacturer: str, model: str) -> ModemProfile:
    """The first profile whose patterns match ``AT+CGMI`` / ``AT+CGMM`` (generic otherwise)."""
    for profile in PROFILES.values():
        if profile is GENERIC:
            continue
        if re.search(profile.manufacturer, manufacturer, re.IGNORECASE) and re.search(
            profile.model, model, re.IGNORECASE
        ):
            return profile
    return GENERIC
