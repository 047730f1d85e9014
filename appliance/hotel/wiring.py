"""Builds the PMS link's drivers, and joins the rooms to the routing chain (called by the
composition root)."""

from __future__ import annotations

import datetime as dt
import functools
import random
import time
import zoneinfo
from collections.abc import Callable
from typing import Any

from appliance.hotel.calls import RoomCallDecider
from appliance.hotel.codes import PhoneWakeUps, RoomActions, RoomCodeDecider
from appliance.hotel.rooms import RoomBook
from appliance.hotel.settings import HotelSettings, PmsSettings
from appliance.pbx.deciders import OWN_NUMBERS, POLICY, DecisionChain
from appliance.pbx.dialplan import DialPlan
from drivers.fias.client import FiasClient, Framing, Opener, SerialChannel, TcpChannel
from drivers.fias.grammar import stamp
from drivers.fias.link import FiasLink, LinkTiming
from drivers.fias.protocol import FiasProtocol
from drivers.fias.serial import SerialProtocol


def build_client(settings: PmsSettings, timezone: str) -> FiasClient:
    """A FiasClient over TCP, or over the serial port when one is configured."""
    zone = zoneinfo.ZoneInfo(timezone)
    timing = LinkTiming(
        answer_timeout=settings.answer_timeout_s,
        alive_interval=settings.alive_interval_s,
        reconnect_min=settings.reconnect_min_s,
        reconnect_max=settings.reconnect_max_s,
    )
    link = FiasLink(
        time.monotonic,
        lambda: stamp(dt.datetime.now(zone)),
        version=settings.vendor_version,
        timing=timing,
        rng=random.Random(),
    )
    return FiasClient(link, _framing(settings), _opener(settings))


def _framing(settings: PmsSettings) -> Callable[[], Framing]:
    if settings.serial_port:
        return functools.partial(SerialProtocol, time.monotonic)
    return FiasProtocol


def _opener(settings: PmsSettings) -> Opener:
    if settings.serial_port:
        return SerialChannel.opener(settings.serial_port)
    return TcpChannel.opener(settings.host, settings.port, settings.connect_timeout_s)


def join_routing_chain(
    chain: DecisionChain,
    dialplan: Callable[[], DialPlan],
    hotel: HotelSettings,
    rooms: RoomBook,
    pms: RoomActions,
    timezone: str,
    wake_ups: PhoneWakeUps,
    alert: Callable[[str, dict[str, Any]], None] | None,
) -> None:
    """Room codes before the dial plan; the rooms' class of service and guest names after it."""
    now = functools.partial(dt.datetime.now, zoneinfo.ZoneInfo(timezone))
    chain.add(RoomCodeDecider(hotel.codes, rooms, pms, dialplan, now, wake_ups), OWN_NUMBERS)
    emergency = frozenset(hotel.emergency_numbers)
    calls = RoomCallDecider(rooms, dialplan, emergency, hotel.vacant_redirect, alert, hotel.dnd)
    chain.add(calls, POLICY)
