"""Call charges: every chargeable call from a room is posted to the PMS, exactly once.

Theory of operation. The PBX hands every stored CDR to :meth:`ChargeService.on_cdr`. A CDR
is chargeable when its caller is a room's extension, it left over a trunk (``direction``
``outbound``) and it was answered for at least one second. By default the PMS rates it
(``PT`` ``T``; one call-costing method per property, as the PMS is configured): it
carries ``DA``/``TI`` (call start, site time zone), ``DU`` (``HHMMSS`` billed) and ``DD``
(the dialled digits, unformatted, at most 20); with ``hotel.charges.method: tariff`` it is
rated here instead (``PT`` ``C`` with ``TA`` and the tariff's zone in ``CT``,
``appliance/hotel/tariffs.py``). It joins the durable posting queue keyed by its CDR id
in the same commit (``PostingQueue.add_once``), so offering a CDR twice queues it once;
from there it goes out in order, one outstanding, across link drops, night audits and
restarts (``appliance/hotel/postings.py``), also for a room checked out since.

A crash after the CDR's commit and before the posting's loses nothing: at start-up
:meth:`ChargeService.recover` offers again every CDR of the last ``RECOVER_S`` still in the
PBX's CDR index, from when charging was first enabled on this store (``charges:since``),
so a property's older calls are never charged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

import msgpack

from appliance.hotel.postings import Posting, PostingQueue
from appliance.hotel.rooms import RoomBook
from appliance.hotel.settings import ChargeSettings
from appliance.hotel.tariffs import amount, tariff_for
from appliance.pbx.calls import INDEX as CDR_INDEX
from appliance.store import StateStore, Store
from drivers.fias.grammar import fias_date, fias_time
from drivers.sync.records import iso

log = logging.getLogger(__name__)

RECOVER_S = 2 * 24 * 3600.0
SINCE_KEY = "charges:since"


def charge_fields(
    cdr: Mapping[str, Any], zone: dt.tzinfo, settings: ChargeSettings
) -> dict[str, str | int] | None:
    """The PS fields of a chargeable CDR (without RN), None when it is not chargeable."""
    billed = int(cdr.get("billable_s") or 0)
    if cdr.get("direction") != "outbound" or not cdr.get("answer") or billed <= 0:
        return None
    start = dt.datetime.fromisoformat(str(cdr["start"])).astimezone(zone)
    dialled = "".join(c for c in str(cdr["callee"].get("number") or "") if c.isdigit())[:20]
    hours, rest = divmod(billed, 3600)
    duration = f"{min(hours, 99):02d}{rest // 60:02d}{rest % 60:02d}"
    fields: dict[str, str | int] = {"PT": "T", "DA": fias_date(start), "TI": fias_time(start),
                                    "DU": duration, "DD": dialled}  # fmt: skip
    if settings.method == "tariff":
        tariff = tariff_for(settings.tariffs, dialled)
        priced: dict[str, str | int] = {"PT": "C", "TA": amount(tariff, start, billed),
                                        "CT": tariff.zone}  # fmt: skip
        fields = {**fields, **priced}
    return fields


class ChargeService:
    """Queues a PS for every chargeable call from a room, once per CDR (a component)."""

    name = "hotel-charges"

    def __init__(
        self,
        rooms: RoomBook,
        store: Callable[[], Store],
        timezone: str,
        clock: Callable[[], float],
        settings: ChargeSettings | None = None,
        business_date: Callable[[], str] | None = None,
    ) -> None:
        self._rooms = rooms
        self._business_date = business_date
        self._settings = settings or ChargeSettings()
        self._store = store
        self._zone = zoneinfo.ZoneInfo(timezone)
        self._clock = clock
        self.queued = 0

    async def start(self) -> None:
        """Recover the charges a crash may have left behind (after the PBX started)."""
        queued = await asyncio.to_thread(self.recover)
        if queued:
            log.warning("%d call charges recovered from the CDR index", queued)

    async def stop(self) -> None:
        """Nothing to release: every charge is committed when queued."""

    def on_cdr(self, cdr: Mapping[str, Any]) -> None:
        """Post ``cdr`` if it is a chargeable call from a room (never raises)."""
        try:
            self._charge(cdr)
        except Exception:
            extra = {"error_id": "charge-not-queued", "cdr_id": cdr.get("cdr_id")}
            log.exception("call charge not queued", extra=extra)

    def recover(self) -> int:
        """Offer again the recent CDRs of the index; returns how many were queued now."""
        state = StateStore(self._store(), "hotel")
        since = state.get(SINCE_KEY)
        if since is None:
            since = self._clock()
            state.put(SINCE_KEY, since)
        before = self.queued
        oldest = iso(max(since, self._clock() - RECOVER_S)) or ""
        for cdr in self._indexed_since(oldest):
            self.on_cdr(cdr)
        return self.queued - before

    def _charge(self, cdr: Mapping[str, Any]) -> None:
        caller = cdr.get("caller") or {}
        room = self._rooms.for_extension(str(caller.get("extension") or caller.get("number")))
        fields = charge_fields(cdr, self._zone, self._settings) if room is not None else None
        if room is None or fields is None:
            return
        number = self._queue().add_once(Posting.of(room.room, fields), f"cdr:{cdr['cdr_id']}")
        if number is not None:
            self.queued += 1
            log.info("call charge for room %s queued as P#%d", room.room, number,
                     extra={"cdr_id": cdr["cdr_id"]})  # fmt: skip

    def _queue(self) -> PostingQueue:
        return PostingQueue(self._store(), business_date=self._business_date)

    def _indexed_since(self, oldest: str) -> list[dict[str, Any]]:
        store = self._store()
        index = store.db(CDR_INDEX)
        found = []
        with store.read() as txn:
            cursor = txn.cursor(db=index)
            if cursor.set_range(oldest.encode()):
                found = [msgpack.unpackb(bytes(value), raw=False) for _, value in cursor]
        return found
