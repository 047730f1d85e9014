"""The media worker's control link: JSON objects, one per line, on its stdin and stdout.

The appliance writes commands to a worker's stdin; the worker writes events to its stdout,
each line prefixed with ``@ev `` so stray library output on stdout is never mistaken for
an event. ``WorkerConfig`` is the worker's whole configuration, written by the pool as a
JSON file before the worker starts. Pure: no pjsua2, no I/O.

Each command and each event is a frozen record below, named after its ``cmd``/``ev``
(``Originate``, ``IvrPlay``, ``LegEvent``...); an event with a ``state`` is one record whose
``state`` is a ``Literal``. ``pack_command``/``parse_command`` and
``pack_event``/``parse_event`` are the only way onto and off the wire: parsing checks the
``cmd``/``ev`` name, that every required field is there and that every field has its type
(keys it does not know are ignored, so an older or newer peer's line still parses), and
raises ``ProtocolError`` (with a stable ``error_id``) otherwise. Packing leaves out fields
that are None. Errors::

    ValueError
    └── ProtocolError        error_id: media-line-not-json | media-unknown-record |
                             media-field-missing | media-field-type

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

import inspect
import json
import types
from collections.abc import Callable
from dataclasses import MISSING, Field, FrozenInstanceError, asdict, dataclass, field, fields
from typing import (
    Any,
    ClassVar,
    Literal,
    TypeVar,
    Union,
    dataclass_transform,
    get_args,
    get_origin,
    get_type_hints,
)

EVENT_PREFIX = "@ev "
MAX_CALLS = 4
R = TypeVar("R")
_PLANS: dict[type[object], tuple[tuple[str, str, Any, bool], ...]] = {}
# Per field of a record: its name, its key on the wire, its default, its default factory
# (``MISSING`` where it has none).
Slot = tuple[str, str, Any, Any]


class ProtocolError(ValueError):
    """A line on the control link is no valid command or event; ``error_id`` says why."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id


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


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class Record:
    """A command or an event: a frozen record with typed fields, declared like a dataclass.

    ``@dataclass`` would compile its own ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``,
    ``__setattr__`` and ``__delattr__`` for each of the link's records, which cost every
    media worker 1.5 MiB; these share one set of methods that read the record's ``FIELDS``.
    Fields are declared in the class body as in a dataclass (``field(default_factory=...)``,
    ``field(metadata={"wire": ...})`` for a key that is a Python keyword).
    """

    TYPE: ClassVar[str]
    FIELDS: ClassVar[tuple[Slot, ...]] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        slots: list[Slot] = []
        for name, hint in inspect.get_annotations(cls).items():
            if not str(hint).startswith("ClassVar"):
                slots.append(_slot(cls, name))
        cls.FIELDS = tuple(slots)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(self.FIELDS):
            raise TypeError(f"{type(self).__name__}: {len(args)} positional arguments")
        for index, (name, _, default, factory) in enumerate(self.FIELDS):
            if index < len(args) and name in kwargs:
                raise TypeError(f"{type(self).__name__}: {name} given twice")
            if index < len(args):
                value = args[index]
            elif name in kwargs:
                value = kwargs.pop(name)
            elif default is not MISSING:
                value = default
            elif factory is not MISSING:
                value = factory()
            else:
                raise TypeError(f"{type(self).__name__}: {name} is missing")
            object.__setattr__(self, name, value)
        if kwargs:
            raise TypeError(f"{type(self).__name__}: no field {', '.join(kwargs)}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, slot[0]) for slot in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        values = ", ".join(f"{slot[0]}={getattr(self, slot[0])!r}" for slot in self.FIELDS)
        return f"{type(self).__name__}({values})"

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")


def _slot(cls: type[Record], name: str) -> Slot:
    """The field ``name`` of ``cls``; a ``field(...)`` in the class body gives way to its
    default, as in a dataclass."""
    value = cls.__dict__.get(name, MISSING)
    if not isinstance(value, Field):
        return (name, name, value, MISSING)
    if value.default is MISSING:
        delattr(cls, name)
    else:
        setattr(cls, name, value.default)
    return (name, value.metadata.get("wire", name), value.default, value.default_factory)


# -- commands (appliance -> worker) ----------------------------------------------------


class Originate(Record):
    """Ring ``to``; answered, REFER it to ``refer_to`` or drive it as IVR flow ``ivr``."""

    TYPE: ClassVar[str] = "originate"
    id: str
    to: str
    from_user: str = ""
    display: str = ""
    refer_to: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    ivr: str = ""


class Conference(Record):
    """Dial ``to`` into ``room``; with ``replaces`` take over that dialog at the callee."""

    TYPE: ClassVar[str] = "conference"
    id: str
    room: str
    to: str
    from_user: str = ""
    display: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    replaces: str = ""


class Hangup(Record):
    """End every leg started for ``id``."""

    TYPE: ClassVar[str] = "hangup"
    id: str


class GsmProgress(Record):
    """The modem's call is alerting: 180."""

    TYPE: ClassVar[str] = "gsm-progress"
    channel: str


class GsmAnswer(Record):
    """The modem's call is up: open the voice tty, bridge it, 200 OK."""

    TYPE: ClassVar[str] = "gsm-answer"
    channel: str
    voice_port: str
    rate: int


class GsmEnd(Record):
    """Final answer (unanswered) or hang up."""

    TYPE: ClassVar[str] = "gsm-end"
    channel: str
    code: int | None = None
    reason: str | None = None


class GsmMove(Record):
    """The unanswered call now dials on channel ``to``."""

    TYPE: ClassVar[str] = "gsm-move"
    channel: str
    to: str


class GsmIncoming(Record):
    """A call arrived on the modem: ring ``to`` through Kamailio presenting ``from_``."""

    TYPE: ClassVar[str] = "gsm-incoming"
    channel: str
    from_: str = field(metadata={"wire": "from"})
    to: str
    voice_port: str
    rate: int


class GsmDtmf(Record):
    """The GSM far end pressed keys (RFC 4733 towards the SIP side)."""

    TYPE: ClassVar[str] = "gsm-dtmf"
    channel: str
    digits: str


class GsmStats(Record):
    """Report every GSM link's frame counters."""

    TYPE: ClassVar[str] = "gsm-stats"


class RoomLinkOpen(Record):
    """Open this worker's end of link ``link`` of meet-me ``room``; with ``peer`` join it."""

    TYPE: ClassVar[str] = "room-link"
    room: str
    link: str
    peer: str | None = None


class RoomUnlink(Record):
    """Take the link out of the room and close it."""

    TYPE: ClassVar[str] = "room-unlink"
    link: str


class IvrPlay(Record):
    """Play ``prompt`` to the IVR call ``id`` (its SIP Call-ID)."""

    TYPE: ClassVar[str] = "ivr-play"
    id: str
    prompt: Prompt


class IvrStop(Record):
    """Stop what plays to the IVR call."""

    TYPE: ClassVar[str] = "ivr-stop"
    id: str


class IvrRecord(Record):
    """Record the caller into ``path`` for up to ``max_s``, ending at ``silence_s`` of quiet."""

    TYPE: ClassVar[str] = "ivr-record"
    id: str
    path: str
    max_s: float
    silence_s: float


class IvrRecordStop(Record):
    """End the IVR call's recording."""

    TYPE: ClassVar[str] = "ivr-record-stop"
    id: str


class IvrTransfer(Record):
    """Transfer the IVR call to ``to``."""

    TYPE: ClassVar[str] = "ivr-transfer"
    id: str
    to: str


class IvrHangup(Record):
    """Hang up the IVR call."""

    TYPE: ClassVar[str] = "ivr-hangup"
    id: str


class QueueHold(Record):
    """The queued caller ``id`` hears ``prompt`` (music on hold)."""

    TYPE: ClassVar[str] = "queue-hold"
    id: str
    prompt: Prompt


class QueueAnnounce(Record):
    """Play ``prompt`` once to the waiting caller, then the music again."""

    TYPE: ClassVar[str] = "queue-announce"
    id: str
    prompt: Prompt


class QueueOffer(Record):
    """Ring ``agent`` for the queued caller, presenting ``display``."""

    TYPE: ClassVar[str] = "queue-offer"
    id: str
    agent: str
    display: str = ""


class QueueAnswer(Record):
    """The agent answered on the desk: bridge the caller to the agent's leg."""

    TYPE: ClassVar[str] = "queue-answer"
    id: str
    agent: str


class QueueCancel(Record):
    """Stop ringing ``agent`` (every agent when None) for the caller."""

    TYPE: ClassVar[str] = "queue-cancel"
    id: str
    agent: str | None = None


class QueueTransfer(Record):
    """Send the queued caller to ``to``."""

    TYPE: ClassVar[str] = "queue-transfer"
    id: str
    to: str


class QueueHangup(Record):
    """Hang up the queued caller and the agent rung for it."""

    TYPE: ClassVar[str] = "queue-hangup"
    id: str


class QueueCallback(Record):
    """Ring ``agent``, then call ``caller`` back; ``release`` plays to the agent when the
    caller does not answer within ``ring_s``."""

    TYPE: ClassVar[str] = "queue-callback"
    id: str
    agent: str
    caller: str
    display: str
    release: Prompt | None = None
    ring_s: float | None = None


class SuperviseCall(Record):
    """Ring ``to`` as a supervisor (or third party) of ``agent``'s queue call."""

    TYPE: ClassVar[str] = "supervise-call"
    id: str
    agent: str
    to: str
    display: str = ""


class SuperviseJoin(Record):
    """Join the answered supervisor's leg in ``mode``, announced by ``beep``."""

    TYPE: ClassVar[str] = "supervise-join"
    id: str
    mode: str
    beep: str = "none"


class SuperviseMode(Record):
    """Switch the supervisor to ``mode`` (monitor, whisper, barge)."""

    TYPE: ClassVar[str] = "supervise-mode"
    id: str
    mode: str


class SuperviseHangup(Record):
    """Hang up the supervisor's leg."""

    TYPE: ClassVar[str] = "supervise-hangup"
    id: str


class AnchorCall(Record):
    """Take over the call between ``agent`` and ``other``: dial both, each with Replaces of
    its own dialog, and bridge them for supervision."""

    TYPE: ClassVar[str] = "anchor"
    id: str
    agent: str
    other: str
    agent_replaces: str
    other_replaces: str
    headers: dict[str, str] = field(default_factory=dict)


class Quit(Record):
    """Hang up everything and exit."""

    TYPE: ClassVar[str] = "quit"


GsmCommand = GsmProgress | GsmAnswer | GsmEnd | GsmMove | GsmIncoming | GsmDtmf | GsmStats
IvrCommand = IvrPlay | IvrStop | IvrRecord | IvrRecordStop | IvrTransfer | IvrHangup
QueueCommand = (
    QueueHold | QueueAnnounce | QueueOffer | QueueAnswer | QueueCancel | QueueTransfer
    | QueueHangup | QueueCallback
)  # fmt: skip
SuperviseCommand = SuperviseCall | SuperviseJoin | SuperviseMode | SuperviseHangup
RoomCommand = RoomLinkOpen | RoomUnlink
Command = (
    Originate | Conference | Hangup | GsmCommand | RoomCommand | IvrCommand | QueueCommand
    | SuperviseCommand | AnchorCall | Quit
)  # fmt: skip

# -- events (worker -> appliance) ------------------------------------------------------


class Ready(Record):
    """The worker listens on ``port``."""

    TYPE: ClassVar[str] = "ready"
    port: int
    name: str = ""


class Load(Record):
    """The worker holds ``calls`` of ``capacity``."""

    TYPE: ClassVar[str] = "load"
    calls: int
    capacity: int


class LegEvent(Record):
    """Progress of a call the appliance placed (``originate``/``conference``)."""

    TYPE: ClassVar[str] = "leg"
    id: str
    state: Literal["ringing", "answered", "ended"]
    code: int = 0
    reason: str = ""
    answered: bool = False


class TransferEvent(Record):
    """Progress of a click-to-dial REFER."""

    TYPE: ClassVar[str] = "transfer"
    id: str
    code: int
    final: bool


IvrState = Literal["start", "digit", "played", "recorded", "ended"]


class IvrEvent(Record):
    """An IVR call (see drivers.media.ivr): started, a digit, a prompt played, recorded."""

    TYPE: ClassVar[str] = "ivr"
    id: str
    state: IvrState
    flow: str = ""
    caller: str = ""
    tag: str | None = None
    digit: str = ""
    path: str = ""
    seconds: float = 0.0


QueueState = Literal[
    "start", "digit", "ended", "agent-ringing", "agent-answered", "agent-ended",
    "callback-ringing", "callback-answered", "callback-ended",
]  # fmt: skip


class QueueEvent(Record):
    """A queued caller, the agent rung for it, or a callback's legs (drivers.media.queues,
    drivers.media.callbacks); ``answered`` is None where the state does not tell."""

    TYPE: ClassVar[str] = "queue"
    id: str
    state: QueueState
    queue: str = ""
    caller: str = ""
    agent: str = ""
    code: int = 0
    reason: str = ""
    answered: bool | None = None
    digit: str = ""
    sip_call_id: str = ""


class SuperviseEvent(Record):
    """A supervisor's leg (drivers.media.supervise): started, a digit, ended."""

    TYPE: ClassVar[str] = "supervise"
    id: str
    state: Literal["start", "digit", "ended"]
    call_id: str = ""
    agent: str = ""
    supervisor: str = ""
    call: str = ""
    digit: str = ""
    code: int = 0
    reason: str = ""
    answered: bool = False


class AnchorEvent(Record):
    """An anchored call (drivers.media.anchor): bridged, or ended (``bridged``: it had been)."""

    TYPE: ClassVar[str] = "anchor"
    id: str
    state: Literal["bridged", "ended"]
    agent: str = ""
    code: int = 0
    reason: str = ""
    bridged: bool = False


class ErrorEvent(Record):
    """A command failed; ``id`` names what it was about when known."""

    TYPE: ClassVar[str] = "error"
    message: str
    id: str | None = None
    error_id: str = ""


Frames = dict[str, int | bool]


class GsmLegEvent(Record):
    """A GSM leg on ``channel``: invite, ringing, answered, dtmf, lost, ended."""

    TYPE: ClassVar[str] = "gsm"
    channel: str
    state: Literal["invite", "ringing", "answered", "dtmf", "lost", "ended"]
    number: str = ""
    call_id: str = ""
    code: int = 0
    reason: str = ""
    answered: bool = False
    digits: str = ""
    frames: Frames = field(default_factory=dict)


class GsmStatsEvent(Record):
    """Every GSM link's frame counters, by channel."""

    TYPE: ClassVar[str] = "gsm-stats"
    channels: dict[str, Frames]


class RoomEvent(Record):
    """A meet-me room holds ``members`` calls here; ``call_id`` joined (empty: one left)."""

    TYPE: ClassVar[str] = "room"
    room: str
    members: int
    call_id: str = ""


class RoomLinkEvent(Record):
    """This worker's end of ``link`` listens on ``port``."""

    TYPE: ClassVar[str] = "room-link"
    link: str
    room: str
    port: int


Event = (
    Ready | Load | LegEvent | TransferEvent | IvrEvent | QueueEvent | SuperviseEvent
    | AnchorEvent | ErrorEvent | GsmLegEvent | GsmStatsEvent | RoomEvent | RoomLinkEvent
)  # fmt: skip

Emit = Callable[[Event], None]

COMMANDS: dict[str, type[Command]] = {c.TYPE: c for c in get_args(Command)}
EVENTS: dict[str, type[Event]] = {e.TYPE: e for e in get_args(Event)}


# -- the wire --------------------------------------------------------------------------


def pack_command(command: Command) -> bytes:
    """One command line (with its newline)."""
    return (
        json.dumps({"cmd": command.TYPE, **_fields(command)}, separators=(",", ":")) + "\n"
    ).encode()


def parse_command(line: str) -> Command:
    """The command on ``line``, or ProtocolError."""
    doc = _object(line)
    return _record(COMMANDS, doc.get("cmd"), doc, "command")


def pack_event(event: Event) -> str:
    """One event line (with its newline)."""
    return (
        EVENT_PREFIX
        + json.dumps({"ev": event.TYPE, **_fields(event)}, separators=(",", ":"))
        + "\n"
    )


def parse_event(line: str) -> Event | None:
    """The event on ``line``, None when the line is not an event, or ProtocolError."""
    if not line.startswith(EVENT_PREFIX):
        return None
    doc = _object(line[len(EVENT_PREFIX) :])
    return _record(EVENTS, doc.get("ev"), doc, "event")


def _fields(record: object) -> dict[str, object]:
    doc: dict[str, object] = {}
    for name, wire, _, _ in _plan(type(record)):
        value = getattr(record, name)
        if value is not None:
            doc[wire] = asdict(value) if isinstance(value, Prompt) else value
    return doc


def _object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProtocolError("media-line-not-json", f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise ProtocolError("media-line-not-json", "not a JSON object")
    return value


def _record(known: dict[str, type[R]], name: object, doc: dict[str, Any], kind: str) -> R:
    cls = known.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ProtocolError("media-unknown-record", f"unknown {kind} {name!r}")
    return _build(cls, doc, str(name))


def _build(cls: type[R], doc: dict[str, Any], where: str) -> R:
    values: dict[str, object] = {}
    for name, wire, hint, required in _plan(cls):
        if wire in doc:
            value = doc[wire]
            # the exact type needs no further look (bool is no int here)
            values[name] = value if type(value) is hint else _typed(value, hint, f"{where}.{wire}")
        elif required:
            raise ProtocolError("media-field-missing", f"{where}: {wire} is missing")
    return cls(**values)


def _plan(cls: type[object]) -> tuple[tuple[str, str, Any, bool], ...]:
    """Per field of a record: its name, its key on the wire, its type, whether required."""
    plan = _PLANS.get(cls)
    if plan is None:
        hints = get_type_hints(cls)
        plan = _PLANS[cls] = tuple(
            (name, wire, hints[name], default is MISSING and factory is MISSING)
            for name, wire, default, factory in _slots(cls)
        )
    return plan


def _slots(cls: type[object]) -> tuple[Slot, ...]:
    if issubclass(cls, Record):
        return cls.FIELDS
    return tuple(
        (f.name, f.metadata.get("wire", f.name), f.default, f.default_factory)
        for f in fields(cls)  # type: ignore[arg-type]
    )


def _typed(value: object, hint: Any, where: str) -> object:
    """``value`` as ``hint`` (a float may arrive as an int), or ProtocolError."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return _union(value, get_args(hint), where)
    if origin is Literal:
        if value in get_args(hint):
            return value
        raise ProtocolError("media-field-type", f"{where}: {value!r} is none of {get_args(hint)}")
    if origin is dict:
        return _mapping(value, get_args(hint)[1], where)
    if hint is Prompt and isinstance(value, dict):
        return _build(hint, value, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (
        isinstance(hint, type)
        and isinstance(value, hint)
        and (hint is bool or not isinstance(value, bool))
    ):
        return value
    raise ProtocolError(
        "media-field-type", f"{where}: {value!r} is not {getattr(hint, '__name__', hint)}"
    )


def _union(value: object, options: tuple[Any, ...], where: str) -> object:
    if value is None and type(None) in options:
        return None
    for option in (o for o in options if o is not type(None)):
        try:
            return _typed(value, option, where)
        except ProtocolError:
            continue
    raise ProtocolError("media-field-type", f"{where}: {value!r} is none of {options}")


def _mapping(value: object, hint: Any, where: str) -> dict[str, object]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ProtocolError("media-field-type", f"{where}: {value!r} is no JSON object")
    return {k: _typed(v, hint, f"{where}.{k}") for k, v in value.items()}
