"""The media worker's control link: JSON objects, one per line, on its stdin and stdout.

The appliance writes commands to a worker's stdin; the worker writes events to its stdout,
each line prefixed with ``@ev `` so stray library output on stdout is never mistaken for
an event. ``WorkerConfig`` is the worker's whole configuration, written by the pool as a
JSON file before the worker starts. Pure: no pjsua2, no I/O.

Commands (``cmd``)::

    originate   id, to, from_user, display, refer_to, headers, ivr
                                                      ring ``to``; once answered, REFER it to
                                                      ``refer_to`` and leave (click-to-dial),
                                                      or with ``ivr`` (a flow name) report it
                                                      as an IVR call (``start`` with ``tag``)
                                                      the appliance drives (wake-up calls)
    conference  id, room, to, from_user, display, headers, replaces
                                                      dial ``to`` into ``room``; with
                                                      ``replaces`` the INVITE takes over that
                                                      dialog at the callee (Replaces header)
    hangup      id                                    end every leg started for ``id``
    gsm-progress  channel                             the modem's call is alerting: 180
    gsm-answer    channel, voice_port, rate           the modem's call is up: open the voice
                                                      tty, bridge it, 200 OK
    gsm-end       channel, code, reason               final answer (unanswered) or hang up
    gsm-move      channel, to                         the unanswered call now dials on ``to``
    gsm-incoming  channel, from, to, voice_port, rate a call arrived on the modem: ring ``to``
                                                      through Kamailio presenting ``from``
    gsm-dtmf      channel, digits                     the GSM far end pressed keys (RFC 4733)
    gsm-stats                                         report every GSM link's frame counters
    room-link     room, link, peer                    open this worker's end of a link between
                                                      two workers' bridges of meet-me ``room``
                                                      (reported with its port); with ``peer``
                                                      (host:port of the other end) connect it
                                                      and join it to the room
    room-unlink   link                                take the link out of the room and close it
    ivr-play, ivr-stop, ivr-record, ivr-record-stop, ivr-transfer, ivr-hangup
                  id (the call's SIP Call-ID), ...    act on an IVR call (drivers.media.ivr)
    queue-hold, queue-offer, queue-cancel, queue-transfer, queue-hangup
                  id (the caller's SIP Call-ID), ...  act on a queued caller and the agent
                                                      rung for it (drivers.media.queues)
    queue-callback  id, agent, caller, display       ring the agent, then call the caller
                                                      back (drivers.media.callbacks)
    supervise-call, supervise-join, supervise-mode, supervise-hangup
                  id, ...                             a supervisor's leg on an agent's queue
                                                      call (drivers.media.supervise)
    anchor        id, agent, other, agent_replaces, other_replaces, headers
                                                      take over a call between ``agent`` and
                                                      ``other`` (both dialled with Replaces,
                                                      like ``conference``) and bridge it for
                                                      supervision (drivers.media.anchor)
    quit                                              hang up everything and exit

Events (``ev``): ``ready`` (port), ``load`` (calls, capacity), ``leg`` (id, state:
ringing | answered | ended, code, reason), ``transfer`` (id, code, final), ``ivr`` (state:
start (id, flow, caller, tag) | digit (id, digit) | played (id) | recorded (id, path, seconds) |
ended (id); see drivers.media.ivr), ``queue`` (state: start (id, queue, caller) |
agent-ringing | agent-answered | agent-ended (id, agent, code, answered) | digit (id, digit)
| callback-ringing | callback-answered | callback-ended | ended (id); see
drivers.media.queues and drivers.media.callbacks), ``supervise`` (state: start (id,
call_id, agent, supervisor, call) | digit (id, digit) | ended (id, code, reason,
answered); see drivers.media.supervise), ``anchor`` (state: bridged (id, agent) | ended
(id, agent, code, reason, bridged); see drivers.media.anchor), ``error`` (id, message),
``gsm`` (channel, state:
invite (number, call_id) | ringing | answered | dtmf (digits) | lost | ended (code,
reason, answered, frames)), ``gsm-stats`` (channels: {channel: frames}), ``room`` (room,
members: meet-me calls the room holds on this worker, call_id: the SIP Call-ID of the call
that joined, or empty when one left), ``room-link`` (link, room, port: where this end
listens).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

EVENT_PREFIX = "@ev "
MAX_CALLS = 4


class ProtocolError(ValueError):
    """A line on the control link is not a JSON object."""


@dataclass(frozen=True)
class Prompt:
    """Audio to play: a WAV file (8 kHz mono 16-bit) or a tone of ``tone_hz``."""

    file: str | None = None
    tone_hz: int = 0
    on_ms: int = 1000
    off_ms: int = 0
    seconds: float = 4.0


@dataclass(frozen=True)
class WorkerConfig:
    """Everything one worker needs: where to listen, where Kamailio is, what it plays.

    SIP listens on ``host:port`` and takes requests only from ``proxy_host:proxy_port``
    (Kamailio's loopback socket); RTP ports open on ``media_host``.
    """

    name: str
    host: str
    port: int
    proxy_host: str
    proxy_port: int
    domain: str
    media_host: str
    max_calls: int = MAX_CALLS
    prompts: dict[str, Prompt] = field(default_factory=dict)
    gsm_channels: tuple[str, ...] = ()
    jitter_frames: int = 2

    @property
    def proxy_address(self) -> str:
        """``host:port`` SIP requests must come from (as pjsua2 prints a source address)."""
        return f"{self.proxy_host}:{self.proxy_port}"

    def to_json(self) -> str:
        """The JSON document the worker reads with ``from_json``."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        """Parse a document written by ``to_json``."""
        doc = json.loads(text)
        doc["prompts"] = {k: Prompt(**v) for k, v in doc.get("prompts", {}).items()}
        doc["gsm_channels"] = tuple(doc.get("gsm_channels", ()))
        return cls(**doc)


def encode_event(event: dict[str, Any]) -> str:
    """One event line (with its newline)."""
    return EVENT_PREFIX + json.dumps(event, separators=(",", ":")) + "\n"


def decode_event(line: str) -> dict[str, Any] | None:
    """The event on ``line``, or None when the line is not an event."""
    if not line.startswith(EVENT_PREFIX):
        return None
    return _object(line[len(EVENT_PREFIX) :])


def anchor_command(key: str, agent: str, other: str, agent_replaces: str,
                   other_replaces: str, headers: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    """The ``anchor`` command: take over the call between ``agent`` and ``other``."""
    return {"cmd": "anchor", "id": key, "agent": agent, "other": other,
            "agent_replaces": agent_replaces, "other_replaces": other_replaces,
            "headers": headers}  # fmt: skip


def encode_command(command: dict[str, Any]) -> bytes:
    """One command line (with its newline)."""
    return (json.dumps(command, separators=(",", ":")) + "\n").encode()


def decode_command(line: str) -> dict[str, Any]:
    """The command on ``line`` or ProtocolError."""
    return _object(line)


def _object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProtocolError(f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise ProtocolError("not a JSON object")
    return value
