"""The message-waiting lamp of a room's phone, set by the PMS (RE ``ML``), cleared at check-out.

Each change sends an unsolicited ``NOTIFY`` (``Event: message-summary``, RFC 3842) to every
contact the room's extension registered, through Kamailio's RPC: ``ul.lookup`` finds the
contacts, ``tm.t_uac_start`` sends the request statefully. A phone that is not registered
gets nothing (logged); the lamp state stays in the rooms (``GET /api/v1/hotel/rooms``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from appliance.hotel.rooms import RoomBook
from drivers.fias.grammar import Record, RecordGO, RecordRE
from drivers.sip.errors import RpcError

log = logging.getLogger(__name__)

Rpc = Callable[..., Awaitable[Any]]


class MessageLamps:
    """Sends a room phone's lamp state whenever the PMS changes it."""

    def __init__(self, rooms: RoomBook, rpc: Rpc, domain: str) -> None:
        self._rooms = rooms
        self._rpc = rpc
        self._domain = domain
        self._tasks: set[asyncio.Task[int]] = set()

    def on_record(self, record: Record) -> None:
        """RE with ``ML``, or a check-out that emptied the room: send the lamp's state."""
        room = record.room
        lamp_changed = isinstance(record, RecordRE) and record.get("ML") in ("Y", "N")
        vacated = isinstance(record, RecordGO) and room is not None
        if room is None or not (lamp_changed or vacated):
            return
        if vacated and self._rooms.room(room).occupied:
            return
        extension = self._rooms.extensions.get(room)
        if extension is not None:
            waiting = self._rooms.room(room).message_lamp
            task = asyncio.get_running_loop().create_task(self.notify(extension, waiting))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def notify(self, extension: str, waiting: bool) -> int:
        """NOTIFY every registered contact of ``extension``; returns how many were sent."""
        aor = f"sip:{extension}@{self._domain}"
        try:
            # usrloc keys contacts by user only (use_domain 0 in kamailio.cfg.tmpl).
            found = await self._rpc("ul.lookup", "location", extension)
        except RpcError as err:
            log.warning("message lamp of %s not sent: %s", extension, err,
                        extra={"error_id": "message-lamp-not-sent"})  # fmt: skip
            return 0
        sent = 0
        for contact in _addresses(found):
            sent += await self._send(aor, contact, waiting)
        log.info("message lamp of %s %s (%d contacts)", extension, "on" if waiting else "off",
                 sent)  # fmt: skip
        return sent

    async def _send(self, aor: str, contact: str, waiting: bool) -> int:
        body = f"Messages-Waiting: {'yes' if waiting else 'no'}\r\nMessage-Account: {aor}\r\n"
        headers = (f"From: <sip:voicemail@{self._domain}>;tag=lamp\r\nTo: <{aor}>\r\n"
                   "Event: message-summary\r\nSubscription-State: terminated;reason=noresource\r\n"
                   "Content-Type: application/simple-message-summary\r\n")  # fmt: skip
        try:
            await self._rpc("tm.t_uac_start", "NOTIFY", contact, ".", ".", headers, body)
        except RpcError as err:
            log.warning("message lamp NOTIFY to %s failed: %s", contact, err,
                        extra={"error_id": "message-lamp-not-sent"})  # fmt: skip
            return 0
        return 1


def _addresses(found: Any) -> Iterator[str]:
    """Every ``Address`` in Kamailio's ``ul.lookup`` answer (contacts of one AoR)."""
    if isinstance(found, dict):
        for key, value in found.items():
            if key == "Address" and isinstance(value, str):
                yield value
            else:
                yield from _addresses(value)
    elif isinstance(found, list):
        for item in found:
            yield from _addresses(item)
