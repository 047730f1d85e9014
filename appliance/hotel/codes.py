"""Codes dialled from a room's phone: room status (RE ``RS``), minibar (PS), wake-up calls, DND.

It joins the routing chain at the ``OWN_NUMBERS`` stage, before the dial plan (which knows no
such numbers). Only a room's own phone (``hotel.rooms``) may dial them:

- ``<room_status><RS>`` (``*73``: clean/vacant) sends ``RE|RN<room>|RS<RS>|`` when the link
  is active; an RS outside ``statuses``, or a link that is down, is refused;
- ``<minibar><article>[*<quantity>]`` queues a posting durably (the PMS link's queue, one
  outstanding at a time): ``PTM`` with ``MA``/``M#`` for the PMS to price it, or, with
  ``minibar_prices``, ``PTC`` with ``TA`` (price x quantity); an unknown article (when the
  PBX prices) or a quantity of 0 or above ``max_quantity`` is refused;
- ``<wake_up><hhmm>`` (``*550630``) sets a wake-up call at the next 06:30, ``<wake_up_clear>``
  clears the room's calls set from its phone (with wake-up calls on);
- ``<dnd_on>`` / ``<dnd_off>`` (``*65`` / ``*66``) set or clear the guest's DND (an
  occupied room only): the call path then applies ``hotel.dnd.action``, and the PMS gets the
  door-sign status (``RS8`` / ``RS10``), since FIAS cannot carry ``DN`` to it.

Each code is acted on once per INVITE (the chain is asked once per call); the call is then
sent to ``accepted`` or ``invalid`` (spoken prompts), or answered 603/404 without them.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from typing import Protocol

from appliance.hotel.postings import Posting
from appliance.hotel.rooms import RoomBook
from appliance.hotel.settings import RoomCodeSettings
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision, DialPlan
from drivers.fias.grammar import fias_date, fias_time

log = logging.getLogger(__name__)

_MINIBAR = re.compile(r"^(?P<article>[0-9]{1,8})(?:\*(?P<quantity>[0-9]{1,3}))?$")


class RoomActions(Protocol):
    """What the codes need of the PMS link (``PmsLinkService``)."""

    def room_status(self, room: str, status: int) -> bool:
        """Send RE with RS now; False when the link cannot carry it."""

    def post(self, posting: Posting) -> int:
        """Queue a posting durably; returns its P#."""

    def guest_dnd(self, room: str, on: bool) -> bool:
        """Set or clear the guest's DND; False for a vacant room."""


class PhoneWakeUps(Protocol):
    """Wake-up calls set and cleared from a room's phone (``WakeUpCallService``)."""

    def phone_wake_up(self, room: str, hhmm: str) -> bool:
        """A call at the next ``hh:mm``; False when it is no time of day."""

    def phone_clear(self, room: str) -> bool:
        """Clear the room's calls set from its phone; False when there was none."""


class RoomCodeDecider:
    """Acts on room status, minibar, wake-up and DND codes dialled from a room's phone."""

    name = "hotel-codes"

    def __init__(
        self,
        settings: RoomCodeSettings,
        rooms: RoomBook,
        pms: RoomActions,
        dialplan: Callable[[], DialPlan],
        now: Callable[[], dt.datetime],
        wake_ups: PhoneWakeUps | None = None,
    ) -> None:
        self._settings = settings
        self._wake_ups = wake_ups
        self._rooms = rooms
        self._pms = pms
        self._dialplan = dialplan
        self._now = now

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """The answer to a code from a room; ``decision`` unchanged for any other call."""
        if decision is not None or query.from_trunk or query.from_peer:
            return decision
        room = self._rooms.for_extension(query.caller)
        codes = self._settings
        if room is None:
            return decision
        if query.dialled in (codes.dnd_on, codes.dnd_off):
            on = query.dialled == codes.dnd_on
            return self._answer(self._dnd(room.room, on), "dnd-on" if on else "dnd-off")
        if query.dialled.startswith(codes.room_status):
            status = query.dialled[len(codes.room_status) :]
            return self._answer(self._room_status(room.room, status), "room-status")
        if query.dialled.startswith(codes.minibar):
            consumed = query.dialled[len(codes.minibar) :]
            return self._answer(self._minibar(room.room, consumed), "minibar")
        return self._wake_up(room.room, query.dialled) or decision

    def _wake_up(self, room: str, dialled: str) -> Decision | None:
        codes, wake_ups = self._settings, self._wake_ups
        if wake_ups is None:
            return None
        if dialled == codes.wake_up_clear:
            return self._answer(wake_ups.phone_clear(room), "wake-up-clear")
        if dialled.startswith(codes.wake_up):
            hhmm = dialled[len(codes.wake_up) :]
            done = len(hhmm) == 4 and hhmm.isdigit() and wake_ups.phone_wake_up(room, hhmm)
            return self._answer(done, "wake-up")
        return None

    def _dnd(self, room: str, on: bool) -> bool:
        if not self._pms.guest_dnd(room, on):
            log.warning("room %s dialled DND %s, but nobody is checked in", room,
                        "on" if on else "off")  # fmt: skip
            return False
        log.info("room %s: the guest's DND %s", room, "on" if on else "off")
        return True

    def _room_status(self, room: str, text: str) -> bool:
        if not text.isdigit() or int(text) not in self._settings.statuses:
            log.warning("room %s dialled room status %r, which is not configured", room, text)
            return False
        if not self._pms.room_status(room, int(text)):
            log.warning("room status %s for room %s not sent: the PMS link is not active",
                        text, room)  # fmt: skip
            return False
        log.info("room %s: room status %s sent to the PMS", room, text)
        return True

    def _minibar(self, room: str, text: str) -> bool:
        found = _MINIBAR.match(text)
        prices = self._settings.minibar_prices
        if found is None:
            log.warning("room %s dialled minibar code %r, which is malformed", room, text)
            return False
        article, quantity = found["article"], int(found["quantity"] or 1)
        if not 1 <= quantity <= self._settings.max_quantity or (prices and article not in prices):
            log.warning("room %s: minibar article %s x %d refused", room, article, quantity)
            return False
        now = self._now()
        fields: dict[str, str | int] = {"PT": "M", "MA": article, "M#": quantity}
        if prices:
            fields = {"PT": "C", "TA": prices[article] * quantity, "MA": article, "M#": quantity}
        fields.update({"DA": fias_date(now), "TI": fias_time(now)})
        number = self._pms.post(Posting.of(room, fields))
        log.info("room %s: minibar article %s x %d queued as P#%d", room, article, quantity,
                 number)  # fmt: skip
        return True

    def _answer(self, done: bool, what: str) -> Decision:
        target = self._settings.accepted if done else self._settings.invalid
        decision = self._dialplan().target(target) if target else None
        if decision is not None:
            return decision
        if done:
            return Decision("reject", code=603, reason=f"{what}-done")
        return Decision("reject", code=404, reason="invalid-code")
