"""Call events for tests, written as Kamailio's JSON and parsed as the evapi client does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.sip.events import CallEvent, Failover, parse_kamailio_event


def call_event(doc: Mapping[str, Any]) -> CallEvent:
    """The record of a call event (not a failover) from its JSON object."""
    event = parse_kamailio_event(doc)
    assert not isinstance(event, Failover)
    return event
