"""Rating a call by the property's tariff table (``hotel.charges.method: tariff``).

The tariff is the one whose ``prefix`` is the longest start of the dialled digits (a
catch-all ``""`` is required, so every call has one). Its price per started minute is the
time band's holding the call's local start time (a band may cross midnight), else the
tariff's own. The amount is ``max(minimum, minutes x price) + surcharge``, in cents.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from appliance.hotel.settings import Tariff, TimeBand


def tariff_for(tariffs: Sequence[Tariff], dialled: str) -> Tariff:
    """The tariff with the longest prefix of ``dialled``."""
    return max((t for t in tariffs if dialled.startswith(t.prefix)), key=lambda t: len(t.prefix))


def amount(tariff: Tariff, start: dt.datetime, billed_s: int) -> int:
    """What a call of ``billed_s`` seconds that started at local ``start`` costs, in cents."""
    moment = start.strftime("%H:%M")
    price = next((b.per_minute for b in tariff.bands if _holds(b, moment)), tariff.per_minute)
    return max(tariff.minimum, math.ceil(billed_s / 60) * price) + tariff.surcharge


def _holds(band: TimeBand, moment: str) -> bool:
    if band.start <= band.end:
        return band.start <= moment < band.end
    return moment >= band.start or moment < band.end
