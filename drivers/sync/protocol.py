"""The appliance-aggregator wire protocol, version 1 (sans-I/O: frames in, messages out).

Transport: ZeroMQ, appliance DEALER -> aggregator ROUTER, CurveZMQ on every connection.
Every message is one or two frames: frame 0 is a msgpack map ``{"v": 1, "t": TYPE, ...}``
with the fields below; frame 1, only on ``rec-chunk``, is the raw chunk bytes (sent
as its own frame so the bytes are never copied into msgpack).

Up (appliance -> aggregator)

=================  ==========================================================  ==========
type               fields                                                      answer
=================  ==========================================================  ==========
hello              site_id, software, capabilities[], backlog{stream: n},      welcome
                   snapshots{topic: version}
cdr-batch          records[[seq, cdr msgpack bytes]] (1..MAX_RECORDS)          ack
rec-offer          recording_id, size, sha256, meta{}                          rec-resume
rec-chunk          recording_id, offset; frame 1 = bytes                       rec-credit, rec-done
status             health{}                                                    -
snapshot-request   topic, have_version                                         snapshot if newer
snapshot-result    topic, version, ok, running (version in force), reason      -
command-result     command_id, ok, detail                                      -
sim-status         sims[{iccid, channel, slot, status, usage, days, ...}],     -
                   switches[{id, at_ms, channel, from/to slot and iccid,
                   reason}] - full state of the site's SIMs, sent on change
                   and every sim.status_interval_s (docs/sim.md)
compliance-batch   records[[seq, event msgpack bytes]] (1..MAX_RECORDS):       ack
                   refused outbound calls, kept until acknowledged
sms-batch          records[[seq, sms msgpack bytes]] (1..MAX_RECORDS):         ack
                   received SMS and finished outgoing ones (sent, failed),
                   kept until acknowledged (docs/sim.md)
doctor-report      report{at, source, findings[{group, check, status, detail,  -
                   next_step}]} - the site's latest doctor report, sent when
                   a newer one is made and again on each new session
                   (drivers/sync/doctor_report.py, docs/doctor.md)
agent-state-batch  records[[seq, agent state change msgpack bytes]]            ack
                   (1..MAX_RECORDS): contact-centre agents' state log
                   (drivers/sync/agent_states.py, docs/contact-centre.md)
hotel-batch        records[[seq, hotel record msgpack bytes]] (1..MAX_RECORDS): ack
                   postings the PMS answered and wake-up outcomes
                   (drivers/sync/hotel.py, docs/hotel.md)
=================  ==========================================================  ==========

Down (aggregator -> appliance)

=================  ==========================================================
welcome            server_time, protocol
ack                stream ("cdr", "compliance", "sms", "agent-state", "hotel"), seqs[] -
                   entries durably stored (or already held)
rec-resume         recording_id, offset (bytes already held), credit (chunks allowed)
rec-credit         recording_id, credit (more chunks allowed)
rec-done           recording_id, ok, reason - ok: stored and sha256 verified
snapshot           topic, version, data - full state of a topic (Clone pattern)
update             topic, version, base_version, changes - applies only on base_version
command            command_id, kind, args{}
error              error_id, message, ref - the request named by ref was refused
=================  ==========================================================

Exceptions::

    ProtocolError(error_id, message)    frames that are not a valid message of this version
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

import msgpack

VERSION = 1
MAX_FRAME = 8 * 1024 * 1024
# libzmq drops a connection that sends a frame over MAX_WIRE (ZMQ_MAXMSGSIZE), before any
# of it is held in memory; a frame between MAX_FRAME and MAX_WIRE is answered
# ``frame-too-large``, so a site that gets a batch wrong hears why.
MAX_WIRE = 2 * MAX_FRAME
MAX_RECORDS = 10_000
MAX_CHUNK = 1024 * 1024

# A frame as received: bytes, or a view of a zmq frame's memory (no copy).
Frame = bytes | memoryview


class ProtocolError(Exception):
    """The peer sent something that is not a valid message; ``error_id`` is stable."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(f"{error_id}: {message}")
        self.error_id = error_id
        self.message = message


@dataclass(frozen=True)
class Message:
    """Base of every message; ``TYPE`` is its ``t`` on the wire."""

    TYPE: ClassVar[str] = ""
    SCHEMA: ClassVar[Mapping[str, type | tuple[type, ...]]] = {}


@dataclass(frozen=True)
class Hello(Message):
    TYPE = "hello"
    SCHEMA = {
        "site_id": str,
        "software": str,
        "capabilities": list,
        "backlog": dict,
        "snapshots": dict,
    }
    site_id: str
    software: str
    capabilities: list[str] = field(default_factory=list)
    backlog: dict[str, int] = field(default_factory=dict)
    snapshots: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Welcome(Message):
    TYPE = "welcome"
    SCHEMA = {"server_time": (float, int), "protocol": int}
    server_time: float
    protocol: int = VERSION


@dataclass(frozen=True)
class RecordBatch(Message):
    """Base of every batch of an outbox stream: ``[seq, record bytes]`` entries, acked by seq."""

    SCHEMA = {"records": list}
    records: list[tuple[int, bytes]]


@dataclass(frozen=True)
class CdrBatch(RecordBatch):
    TYPE = "cdr-batch"


@dataclass(frozen=True)
class Ack(Message):
    TYPE = "ack"
    SCHEMA = {"stream": str, "seqs": list}
    stream: str
    seqs: list[int]


@dataclass(frozen=True)
class RecOffer(Message):
    TYPE = "rec-offer"
    SCHEMA = {"recording_id": str, "size": int, "sha256": str, "meta": dict}
    recording_id: str
    size: int
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecChunk(Message):
    TYPE = "rec-chunk"
    SCHEMA = {"recording_id": str, "offset": int}
    recording_id: str
    offset: int
    data: Frame = b""


@dataclass(frozen=True)
class RecResume(Message):
    TYPE = "rec-resume"
    SCHEMA = {"recording_id": str, "offset": int, "credit": int}
    recording_id: str
    offset: int
    credit: int


@dataclass(frozen=True)
class RecCredit(Message):
    TYPE = "rec-credit"
    SCHEMA = {"recording_id": str, "credit": int}
    recording_id: str
    credit: int


@dataclass(frozen=True)
class RecDone(Message):
    TYPE = "rec-done"
    SCHEMA = {"recording_id": str, "ok": bool, "reason": str}
    recording_id: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class Status(Message):
    TYPE = "status"
    SCHEMA = {"health": dict}
    health: dict[str, Any]


@dataclass(frozen=True)
class SnapshotRequest(Message):
    TYPE = "snapshot-request"
    SCHEMA = {"topic": str, "have_version": int}
    topic: str
    have_version: int = 0


@dataclass(frozen=True)
class Snapshot(Message):
    TYPE = "snapshot"
    SCHEMA = {"topic": str, "version": int, "data": object}
    topic: str
    version: int
    data: Any


@dataclass(frozen=True)
class Update(Message):
    TYPE = "update"
    SCHEMA = {"topic": str, "version": int, "base_version": int, "changes": object}
    topic: str
    version: int
    base_version: int
    changes: Any


@dataclass(frozen=True)
class SnapshotResult(Message):
    TYPE = "snapshot-result"
    SCHEMA = {"topic": str, "version": int, "ok": bool, "running": int, "reason": str}
    topic: str
    version: int
    ok: bool
    running: int
    reason: str = ""


@dataclass(frozen=True)
class Command(Message):
    TYPE = "command"
    SCHEMA = {"command_id": str, "kind": str, "args": dict}
    command_id: str
    kind: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CommandResult(Message):
    TYPE = "command-result"
    SCHEMA = {"command_id": str, "ok": bool, "detail": str}
    command_id: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class SimStatus(Message):
    TYPE = "sim-status"
    SCHEMA = {"sims": list, "switches": list}
    sims: list[dict[str, Any]]
    switches: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ComplianceBatch(RecordBatch):
    TYPE = "compliance-batch"


@dataclass(frozen=True)
class SmsBatch(RecordBatch):
    TYPE = "sms-batch"


@dataclass(frozen=True)
class DoctorReportMessage(Message):
    TYPE = "doctor-report"
    SCHEMA = {"report": dict}
    report: dict[str, Any]


@dataclass(frozen=True)
class AgentStateBatch(RecordBatch):
    TYPE = "agent-state-batch"


@dataclass(frozen=True)
class HotelBatch(RecordBatch):
    TYPE = "hotel-batch"


@dataclass(frozen=True)
class ErrorReply(Message):
    TYPE = "error"
    SCHEMA = {"error_id": str, "message": str, "ref": (str, type(None))}
    error_id: str
    message: str
    ref: str | None = None


MESSAGES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Welcome,
        CdrBatch,
        Ack,
        RecOffer,
        RecChunk,
        RecResume,
        RecCredit,
        RecDone,
        Status,
        SnapshotRequest,
        Snapshot,
        Update,
        SnapshotResult,
        Command,
        CommandResult,
        SimStatus,
        ComplianceBatch,
        SmsBatch,
        DoctorReportMessage,
        AgentStateBatch,
        HotelBatch,
        ErrorReply,
    )
}


def encode(message: Message) -> list[Frame]:
    """The frames that carry ``message``; a chunk's data is not copied."""
    header: dict[str, Any] = {"v": VERSION, "t": message.TYPE}
    for f in fields(message):
        if f.name != "data" or not isinstance(message, RecChunk):
            header[f.name] = getattr(message, f.name)
    frames: list[Frame] = [msgpack.packb(header, use_bin_type=True)]
    if isinstance(message, RecChunk):
        frames.append(message.data)
    return frames


def decode(frames: Sequence[Frame]) -> Message:
    """The message carried by ``frames``, or ProtocolError saying what is wrong.

    A chunk's data is the data frame itself (a view of a zmq frame is not copied).
    """
    if not frames or len(frames) > 2:
        raise ProtocolError("bad-frame-count", f"expected 1 or 2 frames, got {len(frames)}")
    if any(len(f) > MAX_FRAME for f in frames):
        raise ProtocolError("frame-too-large", f"a frame exceeds {MAX_FRAME} bytes")
    header = _unpack(frames[0])
    version = header.get("v")
    if version != VERSION:
        raise ProtocolError("unsupported-version", f"protocol version {version!r}, need {VERSION}")
    kind = header.get("t")
    cls = MESSAGES.get(kind) if type(kind) is str else None
    if cls is None:
        raise ProtocolError("unknown-type", f"unknown message type {header.get('t')!r}")
    values = _fields(cls, header)
    if cls is RecChunk:
        if len(frames) != 2 or len(frames[1]) > MAX_CHUNK:
            raise ProtocolError("bad-chunk", f"rec-chunk needs one data frame of <= {MAX_CHUNK}")
        values["data"] = frames[1]
    elif len(frames) != 1:
        raise ProtocolError("bad-frame-count", f"{cls.TYPE} has exactly one frame")
    if issubclass(cls, RecordBatch):
        values["records"] = _records(values["records"])
    message = cls(**values)
    if _negative(message):
        raise ProtocolError("bad-field", f"{cls.TYPE} has a negative size, offset or credit")
    return message


MSGPACK_ERRORS: tuple[type[Exception], ...] = (
    ValueError,  # malformed, truncated or extra data; bad UTF-8; over a length limit
    TypeError,  # a map key that cannot be a key
    OverflowError,
    msgpack.UnpackException,
)
"""What msgpack raises for bytes that are not one valid msgpack object."""


def _unpack(frame: Frame) -> dict[str, Any]:
    try:
        header = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except MSGPACK_ERRORS as err:
        raise ProtocolError("bad-msgpack", f"frame 0 is not msgpack: {err}") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad-header", "frame 0 must be a msgpack map")
    return header


def _fields(cls: type[Message], header: Mapping[str, Any]) -> dict[str, Any]:
    values = {}
    for name, kind in cls.SCHEMA.items():
        if name not in header:
            if any(f.name == name and _has_default(f) for f in fields(cls)):
                continue
            raise ProtocolError("missing-field", f"{cls.TYPE} needs field {name!r}")
        value = header[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ProtocolError("bad-field", f"{cls.TYPE}.{name} has the wrong type")
        values[name] = value
    return values


def _has_default(f: Any) -> bool:
    return f.default is not MISSING or f.default_factory is not MISSING


def _records(records: list[Any]) -> list[tuple[int, bytes]]:
    if not 0 < len(records) <= MAX_RECORDS:
        raise ProtocolError("bad-batch", f"a batch holds 1 to {MAX_RECORDS} records")
    checked = []
    for record in records:
        if (
            not isinstance(record, list)
            or len(record) != 2
            or type(record[0]) is not int
            or not isinstance(record[1], bytes)
        ):
            raise ProtocolError("bad-record", "each record is [seq, bytes]")
        checked.append((record[0], record[1]))
    return checked


def _negative(message: Message) -> bool:
    return any(getattr(message, n, 0) < 0 for n in ("offset", "size", "credit"))
