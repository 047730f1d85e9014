"""What each simulated model says: identity, ICCID command, call URCs and audio routing.

The call URCs follow the captures in the modem reference: Huawei ``^ORIG/^CONF/^CONN/^CEND``,
Quectel ``+QIND: "ccinfo"`` (or ``^DSCI`` when enabled instead), SIMCom ``+CLCC`` auto-reports
with stat 6 and ``VOICE CALL: BEGIN/END``. A generic 27.007 modem reports nothing but RING,
+CLIP and NO CARRIER.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """Simulated model data."""

    profile: str
    manufacturer: str
    model: str
    revision: str
    vendor: str
    iccid_command: str = "AT+CCID"
    iccid_prefix: str = "+CCID: "
    unknown_result: str = "ERROR"
    boot_urcs: tuple[str, ...] = ()
    lte: bool = True
    voice: bool = True
    dual_sim: bool = False
    imei_prefix: str = "86"
    at_interface: str = "if02"
    voice_interface: str = "if01"


DIALECTS = {
    d.profile: d
    for d in (
        Dialect(
            "huawei-e1550",
            "huawei",
            "E1550",
            "11.608.13.02.00",
            "huawei",
            "AT^ICCID?",
            "^ICCID: ",
            "COMMAND NOT SUPPORT",
            ("^SIMST:1",),
            lte=False,
            imei_prefix="35",
        ),
        Dialect(
            "huawei-e173",
            "huawei",
            "E173",
            "11.126.85.00.209",
            "huawei",
            "AT^ICCID?",
            "^ICCID: ",
            "COMMAND NOT SUPPORT",
            ("^SIMST:1",),
            lte=False,
            imei_prefix="35",
        ),
        Dialect(
            "quectel-ec25",
            "Quectel",
            "EC25",
            "EC25EFAR06A06M4G",
            "quectel",
            "AT+QCCID",
            "+QCCID: ",
            boot_urcs=("RDY",),
            dual_sim=True,
        ),
        Dialect(
            "quectel-ec20",
            "Quectel",
            "EC20F",
            "EC20CEFAGR06A05M4G",
            "quectel",
            "AT+QCCID",
            "+QCCID: ",
            boot_urcs=("RDY",),
            dual_sim=True,
        ),
        Dialect(
            "simcom-sim7600",
            "SIMCOM INCORPORATED",
            "SIMCOM_SIM7600E-H",
            "LE20B04SIM7600M22",
            "simcom",
            "AT+CICCID",
            "+ICCID: ",
            boot_urcs=("RDY",),
            voice_interface="if04",
        ),
        Dialect(
            "simcom-sim7600-16k",
            "SIMCOM INCORPORATED",
            "SIMCOM_SIM7600G-H",
            "LE20B04SIM7600M22",
            "simcom",
            "AT+CICCID",
            "+ICCID: ",
            boot_urcs=("RDY",),
            voice_interface="if04",
        ),
        Dialect("generic", "callmesh", "GENERIC-27007", "1.0", "generic", voice=False, lte=False),
    )
}

# 27.007 §7.18 stat for +CLCC / ccinfo; ^DSCI uses its own numbering (Quectel manual 7.23).
CLCC_STAT = {"active": 0, "held": 1, "dialing": 2, "alerting": 3, "incoming": 4}
DSCI_STAT = {"active": 3, "held": 1, "dialing": 2, "alerting": 7, "incoming": 4, "released": 6}


def call_urcs(
    dialect: Dialect,
    flags: set[str],
    idx: int,
    incoming: bool,
    number: str,
    state: str,
    duration: int,
    cause: int,
) -> list[str]:
    """URC lines announcing that call ``idx`` entered ``state``."""
    direction = 1 if incoming else 0
    kind = 145 if number.startswith("+") else 129
    lines: list[str] = []
    if dialect.vendor == "huawei":
        lines += _huawei(idx, state, duration, cause)
    if "ccinfo" in flags:
        stat = -1 if state == "released" else CLCC_STAT[state]
        lines.append(f'+QIND: "ccinfo",{idx},{direction},{stat},0,0,"{number}",{kind}')
    if "dsci" in flags:
        lines.append(f"^DSCI: {idx},{direction},{DSCI_STAT[state]},0,{number},{kind},0")
    if "clcc" in flags:
        stat = 6 if state == "released" else CLCC_STAT[state]
        lines.append(f'+CLCC: {idx},{direction},{stat},0,0,"{number}",{kind}')
    if dialect.vendor == "simcom" and state in ("active", "released"):
        hours, rest = divmod(duration, 3600)
        end = f": {hours:02d}{rest // 60:02d}{rest % 60:02d}"
        lines.append("VOICE CALL: BEGIN" if state == "active" else f"VOICE CALL: END{end}")
    return lines


def _huawei(idx: int, state: str, duration: int, cause: int) -> list[str]:
    if state == "dialing":
        return [f"^ORIG:{idx},0"]
    if state == "alerting":
        return [f"^CONF:{idx}"]
    if state == "active":
        return [f"^CONN:{idx},0"]
    if state == "released":
        return [f"^CEND:{idx},{duration},104,{cause}"]
    return []
