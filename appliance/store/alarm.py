"""The store's high-water alarm: raised while the LMDB map is fuller than configured.

The alarm comes before the store is full (``store.alarm_percent``, 80 % by default), so
an operator sees it in ``/healthz``, ``/metrics`` and at HQ while CDRs can still be
written; a full map refuses every write (``StoreFullError``).
"""

from __future__ import annotations

STORE_HIGH_WATER = "store-high-water"


def used_percent(usage: dict[str, int]) -> float:
    """How full the map is, from ``Store.usage()``."""
    return 100 * usage["used_bytes"] / usage["map_size_bytes"]


def store_alarms(percent: float, alarm_percent: float) -> list[str]:
    """The alarms to raise for a map ``percent`` full (empty: none)."""
    return [STORE_HIGH_WATER] if percent >= alarm_percent else []


def alarm_detail(percent: float, alarm_percent: float) -> str:
    """The store check's detail: how full, and what to do once past the mark."""
    detail = f"{percent:.1f}% of the map used"
    if percent < alarm_percent:
        return detail
    return (
        f"{STORE_HIGH_WATER}: {detail} (alarm at {alarm_percent:g}%); writes fail when it "
        "is full: restore the link to HQ so outboxes drain, or raise store.map_size_mb"
    )
