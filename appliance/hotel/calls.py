"""The hotel's link of the routing chain: a room's class of service and its guest's name.

It joins the chain at the ``POLICY`` stage (``appliance/service.py``), after the dial plan
proposed a route. For a call from a room's phone:

- a route that leaves the company (trunk, GSM, routed trunk) needs the room's class of
  service (``internal`` < ``local`` < ``national`` < ``international``) to reach the
  outbound route's ``cos``; a vacant (checked-out) room is ``internal`` and is refused with
  403 ``room-barred``, a room below the route's level with 403 ``class-of-service``;
- an emergency number (``hotel.emergency_numbers``) is never refused, and is logged as a
  warning for the front desk;
- a call that stays inside the site presents the guest's name as the From display name;
- a call from outside or from a room to a vacant room's extension rings
  ``hotel.vacant_redirect`` (reception) instead, when configured; staff reach the room;
- an emergency call is also announced to business systems as ``hotel.emergency-call`` on
  the PBX's event stream (its webhook), for the front desk's screen;
- a call from anyone to the extension of a room with DND set (``RE …|DNY|`` or the guest's
  code) is answered 486 ``room-dnd`` or rings the front desk instead (``hotel.dnd``), unless
  it is a wake-up call (From ``wake-up``, placed by a media worker: Kamailio says
  ``media=1`` only for calls from the workers' addresses) or the front desk itself calls
  (it gets busy);
- a ring group rings its members without the rooms with DND set; when every member is such
  a room, the group's call gets the DND answer above. The hotel's deciders keep Kamailio's
  local routes off (``appliance/pbx/local_routes.py``), so every call to a group, whoever
  makes it (a phone, a trunk's inbound route, an IVR option, a forward), is decided here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from appliance.hotel.rooms import Room, RoomBook
from appliance.hotel.settings import DndSettings
from appliance.hotel.wakeup_calls import CALLER as WAKE_UP_CALLER
from appliance.pbx.deciders import RouteQuery, outside_number
from appliance.pbx.dialplan import COS_RANK, Decision, DialPlan

log = logging.getLogger(__name__)

_INSIDE = frozenset({"extension", "group", "media"})
_DISPLAY_UNSAFE = str.maketrans(dict.fromkeys('"\\<>\r\n', ""))


class RoomCallDecider:
    """Enforces the room's class of service and names the guest on calls from a room."""

    name = "hotel-rooms"

    def __init__(
        self,
        rooms: RoomBook,
        dialplan: Callable[[], DialPlan],
        emergency_numbers: frozenset[str],
        vacant_redirect: str | None = None,
        alert: Callable[[str, dict[str, Any]], None] | None = None,
        dnd: DndSettings | None = None,
    ) -> None:
        self._rooms = rooms
        self._dnd = dnd or DndSettings()
        self._dialplan = dialplan
        self._emergency = emergency_numbers
        self._vacant_redirect = vacant_redirect
        self._alert = alert

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """The decision refused, named or redirected for a room's call; unchanged otherwise."""
        if decision is None or decision.action == "reject":
            return decision
        decision = self._dnd_diverted(query, decision) or decision
        if decision.action == "reject":
            return decision
        room = None if query.from_trunk else self._rooms.for_extension(query.caller)
        if room is None:
            return self._redirected(query, decision, guest=query.from_trunk)
        if outside_number(decision, query.dialled) is not None:
            refusal = self._refusal(room, query, decision)
            if refusal is not None:
                return refusal
        return _named(self._redirected(query, decision, guest=True), room)

    def _redirected(self, query: RouteQuery, decision: Decision, guest: bool) -> Decision:
        """A call from outside or from a room to a vacant room rings ``vacant_redirect``."""
        if not guest or self._vacant_redirect is None or decision.action != "extension":
            return decision
        callee = self._rooms.for_extension(decision.targets[0])
        target = self._dialplan().local(self._vacant_redirect)
        if callee is None or callee.occupied or target is None:
            return decision
        log.info("call %s to vacant room %s goes to %s", query.call_id, callee.room,
                 self._vacant_redirect)  # fmt: skip
        return replace(target, route=f"hotel:vacant:{callee.room}", recording=decision.recording)

    def _dnd_diverted(self, query: RouteQuery, decision: Decision) -> Decision | None:
        """A call to rooms with DND set: the others of a group ring, else busy or the front
        desk; None when nothing changes."""
        if decision.action not in ("extension", "group") or _wake_up_call(query):
            return None
        quiet = [room for room in map(self._rooms.for_extension, decision.targets)
                 if room is not None and room.dnd]  # fmt: skip
        if not quiet:
            return None
        extensions = {self._rooms.extensions[room.room] for room in quiet}
        ringing = tuple(m for m in decision.targets if m not in extensions)
        if ringing:
            log.info("call %s to %s skips room %s (DND)", query.call_id, decision.route,
                     ", ".join(room.room for room in quiet))  # fmt: skip
            return replace(decision, targets=ringing)
        route = f"hotel:dnd:{quiet[0].room if decision.action == 'extension' else decision.route}"
        desk = self._dnd.front_desk if self._dnd.action == "front-desk" else None
        target = self._dialplan().local(desk) if desk and desk != query.caller else None
        log.info("call %s to %s (DND) %s", query.call_id, route,
                 f"goes to {desk}" if target else "is answered busy")  # fmt: skip
        if target is None:
            return Decision("reject", code=486, reason="room-dnd", route=route)
        return replace(target, route=route, recording=decision.recording)

    def _refusal(self, room: Room, query: RouteQuery, decision: Decision) -> Decision | None:
        if query.dialled in self._emergency:
            self._emergency_call(room, query)
            return None
        if room.cos == "internal":
            return Decision("reject", code=403, reason="room-barred", route=decision.route)
        if COS_RANK[room.cos] < COS_RANK[self._needed(decision)]:
            return Decision("reject", code=403, reason="class-of-service", route=decision.route)
        return None

    def _emergency_call(self, room: Room, query: RouteQuery) -> None:
        alert = {"call_id": query.call_id, "room": room.room, "extension": query.caller,
                 "dialled": query.dialled, "guest": room.guest_name}  # fmt: skip
        log.warning("emergency call to %s from room %s (guest %r)", query.dialled, room.room,
                    room.guest_name, extra={"error_id": "emergency-call"})  # fmt: skip
        if self._alert is not None:
            self._alert("hotel.emergency-call", alert)

    def _needed(self, decision: Decision) -> str:
        """The outbound route's level; a route this site does not define needs the top one."""
        plan = self._dialplan()
        for route in plan.settings.outbound:
            if route.name == decision.route:
                return route.cos
        return "international"


def _wake_up_call(query: RouteQuery) -> bool:
    """A wake-up call a media worker places (trusted by Kamailio from its address)."""
    return query.caller == WAKE_UP_CALLER and (query.raw or {}).get("media") == "1"


def _named(decision: Decision, room: Room) -> Decision:
    name = room.guest_name.translate(_DISPLAY_UNSAFE).strip()
    if not name or decision.action not in _INSIDE:
        return decision
    return replace(decision, caller_name=f'"{name}"')
