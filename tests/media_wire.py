"""Media worker control lines in tests: commands as the worker reads them, events as the
appliance parses them (both through ``drivers.media.protocol``)."""

from __future__ import annotations

import json
from typing import Any

from drivers.media.protocol import EVENT_PREFIX, Command, Event, pack_command, parse_event


def wire(command: Command) -> dict[str, Any]:
    """The JSON object ``command`` is on a worker's stdin."""
    doc: dict[str, Any] = json.loads(pack_command(command))
    return doc


def ev(doc: dict[str, Any]) -> Event:
    """The event a worker writes as the JSON object ``doc``, parsed as the appliance does."""
    event = parse_event(EVENT_PREFIX + json.dumps(doc))
    assert event is not None
    return event
