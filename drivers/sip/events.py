"""Kamailio's call events as typed records, parsed in one place.

``kamailio.cfg.tmpl`` builds every event as a JSON object (``jansson_set``) and relays it
over evapi: ``route[EVENT]`` writes ``invite`` (a call was relayed), ``answer``
(``event_route[dialog:start]``), ``end`` (``event_route[dialog:end]``: BYE, ``reason``
says which side), ``failed`` (``failure_route``: negative final reply, ``reason``
busy/no-answer/cancelled/failed) and ``rejected`` (refused before relaying);
``route[FAILOVER]`` writes ``failover`` (a hop failed, the call moved to the next).
Only ``invite`` and ``rejected`` name the parties (``CallOffer``); ``answer``, ``end``
and ``failed`` carry the call id, the time and what changed, since the call service
applies them to the open call it holds. ``parse_kamailio_event`` turns one decoded
object into its record or raises EventError (``error_id`` ``kamailio-event-invalid``);
unknown keys are ignored, so a newer template still parses.
``tests/unit/pbx/test_kamailio_events.py`` pins the records to events captured from a
real Kamailio and to the keys the template writes.

Kamailio writes empty strings for values it does not have, so an absent optional
string is ``""`` here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from drivers.sip.errors import SipDriverError


class EventError(SipDriverError):
    """A Kamailio event that does not parse into its record."""

    error_id = "kamailio-event-invalid"


@dataclass(frozen=True, kw_only=True)
class SipCallEvent:
    """What ``route[EVENT]`` writes for every kind of call event."""

    kind: ClassVar[str] = ""
    call_id: str
    ts: float
    code: int = 0
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class CallOffer(SipCallEvent):
    """A call as Kamailio offered it: an ``invite`` relayed or a call ``rejected``."""

    from_user: str = ""
    from_name: str = ""
    from_tag: str = ""
    to_user: str = ""
    request_user: str = ""
    source: str = ""
    route: str = ""
    trunk: str = ""
    dialled: str = ""
    refusal: str = ""
    from_trunk: bool = False
    from_media: bool = False
    recording: str = ""
    media_peer: str = ""
    peer_site: str = ""
    caller_ext: str = ""
    conversation: str = ""
    referred_by: str = ""
    gsm: str = ""
    replaces: str = ""
    # Not from Kamailio: the GSM channel, SIM and direction the GSM trunks add.
    gsm_info: Mapping[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True, kw_only=True)
class Invite(CallOffer):
    """A call was relayed: it opens."""

    kind: ClassVar[str] = "invite"


@dataclass(frozen=True, kw_only=True)
class Rejected(CallOffer):
    """A call refused before it was relayed (unknown number, no media relay, a rule)."""

    kind: ClassVar[str] = "rejected"


@dataclass(frozen=True, kw_only=True)
class Answer(SipCallEvent):
    """The dialog was confirmed; ``h_entry``/``h_id`` name it for ``dlg.end_dlg``."""

    kind: ClassVar[str] = "answer"
    to_tag: str = ""
    h_entry: int = 0
    h_id: int = 0


@dataclass(frozen=True, kw_only=True)
class End(SipCallEvent):
    """An answered call ended by BYE; ``reason`` is ``caller`` or ``callee``."""

    kind: ClassVar[str] = "end"


@dataclass(frozen=True, kw_only=True)
class Failed(SipCallEvent):
    """A negative final reply: ``reason`` busy, no-answer, cancelled or failed."""

    kind: ClassVar[str] = "failed"


@dataclass(frozen=True, kw_only=True)
class Failover:
    """A hop of ``route`` (``target``) failed with ``code``; the call went on to ``next``."""

    kind: ClassVar[str] = "failover"
    call_id: str
    ts: float
    route: str = ""
    target: str = ""
    next: str = ""
    code: int = 0


CallEvent = Invite | Rejected | Answer | End | Failed
KamailioEvent = CallEvent | Failover
RECORDS: dict[str, type[KamailioEvent]] = {
    r.kind: r for r in (Invite, Rejected, Answer, End, Failed, Failover)
}
# Fields a record has that Kamailio does not send.
LOCAL_FIELDS = frozenset({"gsm_info"})
_REQUIRED = frozenset({"call_id", "ts"})


def parse_kamailio_event(doc: Mapping[str, Any]) -> KamailioEvent:
    """The record of one decoded event; EventError for an unknown kind or a bad value."""
    kind = str(doc.get("event"))
    record = RECORDS.get(kind)
    if record is None:
        raise EventError(f"unknown Kamailio event {kind[:40]!r}")
    values: dict[str, Any] = {}
    for name, convert in _WIRE_FIELDS[kind]:
        raw = doc.get(name)
        if raw is None or raw == "":
            if name in _REQUIRED:
                raise EventError(f"{kind} event without {name}")
            if raw is None:
                continue
        try:
            values[name] = convert(raw)
        except (TypeError, ValueError) as err:
            raise EventError(f"{kind} event: {name} {str(raw)[:40]!r} is invalid ({err})") from None
    return record(**values)


def _text(raw: object) -> str:
    if not isinstance(raw, str):
        raise TypeError("not a string")
    return raw


def _number(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise TypeError("not an integer")
    return raw


def _flag(raw: object) -> bool:
    if _number(raw) not in (0, 1):
        raise ValueError("not 0 or 1")
    return bool(raw)


def _seconds(raw: object) -> float:
    """Kamailio's ``$TV(Sn)`` (``"<s>.<us>"``) or a number: unix seconds."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise TypeError("not a time")
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError("not a time")
    return value


_CONVERTERS: dict[str, Callable[[object], Any]] = {
    "str": _text,
    "int": _number,
    "bool": _flag,
    "float": _seconds,
}
# Per kind, the keys Kamailio sends and how each value is checked (worked out once).
_WIRE_FIELDS: dict[str, tuple[tuple[str, Callable[[object], Any]], ...]] = {
    kind: tuple(
        (spec.name, _CONVERTERS[str(spec.type)])
        for spec in fields(record)
        if spec.name not in LOCAL_FIELDS
    )
    for kind, record in RECORDS.items()
}
