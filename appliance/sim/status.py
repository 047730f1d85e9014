"""The SIM record a site reports to HQ in ``sim-status`` (fields listed in docs/sim.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from appliance.sim.model import ChannelState, SimIdentity
from appliance.sim.policy import SimView


@dataclass(frozen=True)
class Placement:
    """Where a SIM sits: channel and slot; ``state`` only while its slot is selected.

    ``identity`` is the SIM as last read, for a standby SIM (no ``state``).
    """

    channel: str
    slot: int
    state: ChannelState | None
    group: str
    identity: SimIdentity | None = None


def sim_record(
    sim: SimView,
    where: Placement,
    status: str,
    reason: str,
    switches: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """One SIM as HQ stores it: identity, placement, status, limits, usage, last switch."""
    state = where.state
    identity = state.sim if state is not None else where.identity
    usage = sim.usage
    last = next(
        (s for s in reversed(switches) if sim.iccid in (s["from_iccid"], s["to_iccid"])), None
    )
    return {
        "iccid": sim.iccid,
        "channel": where.channel,
        "modem": state.modem if state else "",
        "slot": where.slot,
        "imsi": identity.imsi if identity else "",
        "number": identity.number if identity else "",
        "operator": identity.operator if identity else "",
        "signal_dbm": state.signal_dbm if state else None,
        "registered": bool(state and state.registered),
        "status": status,
        "reason": reason,
        "needs_review": usage.review,
        "group": where.group,
        "limits": sim.limits.to_doc(),
        "usage": {
            "day": usage.day,
            "calls_today": usage.calls_today,
            "answered_today": usage.answered_today,
            "connected_s_today": round(usage.connected_s_today, 1),
            "month": usage.month,
            "connected_s_month": round(usage.connected_s_month, 1),
            "failure_streak": usage.failure_streak,
        },
        "days": usage.days,
        "last_switch": last,
    }
