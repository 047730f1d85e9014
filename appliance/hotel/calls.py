"""The hotel's link of the routing chain: a room's class of service and its guest's name.

It joins the chain at the ``POLICY`` stage (``appliance/service.py``), after the dial plan
proposed a route. For a call from a room's phone:

- a route that leaves the company (trunk, GSM, routed trunk) needs the room's class of
  service (``internal`` < ``local`` < ``national`` < ``international``) to reach the
  outbound route's ``cos``; a vacant (checked-out) room is ``internal`` and is refused with
  403 ``room-barred``, a room below the route's level with 403 ``class-of-service``;
- an emergency number (``hotel.emergency_numbers``) is never refused, and is logged as a
  warning for the front desk;
- a call that stays inside the site presents the guest's name as the From display name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from appliance.hotel.rooms import Room, RoomBook
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
    ) -> None:
        self._rooms = rooms
        self._dialplan = dialplan
        self._emergency = emergency_numbers

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """The decision refused or named for a call from a room; unchanged otherwise."""
        if decision is None or decision.action == "reject" or query.from_trunk:
            return decision
        room = self._rooms.for_extension(query.caller)
        if room is None:
            return decision
        if outside_number(decision, query.dialled) is not None:
            refusal = self._refusal(room, query.dialled, decision)
            if refusal is not None:
                return refusal
        return _named(decision, room)

    def _refusal(self, room: Room, dialled: str, decision: Decision) -> Decision | None:
        if dialled in self._emergency:
            log.warning("emergency call to %s from room %s (extension of guest %r)",
                        dialled, room.room, room.guest_name)  # fmt: skip
            return None
        if room.cos == "internal":
            return Decision("reject", code=403, reason="room-barred", route=decision.route)
        if COS_RANK[room.cos] < COS_RANK[self._needed(decision)]:
            return Decision("reject", code=403, reason="class-of-service", route=decision.route)
        return None

    def _needed(self, decision: Decision) -> str:
        """The outbound route's level; a route this site does not define needs the top one."""
        plan = self._dialplan()
        for route in plan.settings.outbound:
            if route.name == decision.route:
                return route.cos
        return "international"


def _named(decision: Decision, room: Room) -> Decision:
    name = room.guest_name.translate(_DISPLAY_UNSAFE).strip()
    if not name or decision.action not in _INSIDE:
        return decision
    return replace(decision, caller_name=f'"{name}"')
