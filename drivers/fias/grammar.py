"""FIAS record grammar: every record type we speak, with the spec facts beside it.

Source: Oracle Hospitality FIAS interface specification 2.20.23 (the facts are summarised in the
project's PMS reference). A record is a 2-character Record ID, ``|``, then fields; each field is a
2-character Field ID immediately followed by its value and ``|``. Field order is not fixed (only
the first field may be), empty fields are allowed (``DA|TI|``), values are not padded and leading
zeros are significant (room ``0330`` is not ``330``). Bytes 0x00-0x1F and 0x7F are forbidden in
data; 0x80-0xFF carry other alphabets, so values are decoded as Latin-1, which round-trips every
byte.

A record keeps its fields in wire order, including fields we do not know, so
``pack_record(parse_record(x)) == x`` for every well-formed record. Typed classes add accessors
named after the spec; a record ID we do not know parses to :class:`UnknownRecord`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Self

from drivers.fias.errors import LocalProtocolError, RemoteProtocolError

Fields = tuple[tuple[str, str], ...]
SEPARATOR = "|"
FORBIDDEN = re.compile(rb"[\x00-\x1f\x7f]")
_FORBIDDEN_TEXT = re.compile(r"[\x00-\x1f\x7f|]")


@dataclass(frozen=True)
class Record:
    """A FIAS record: its fields in wire order (``(field id, value)`` pairs)."""

    RECORD_ID: ClassVar[str] = ""
    fields: Fields = ()

    @property
    def record_id(self) -> str:
        """The 2-character Record ID."""
        return self.RECORD_ID

    @classmethod
    def make(cls, values: Mapping[str, str | int] | None = None) -> Self:
        """A record with ``values`` as fields, in the mapping's order."""
        return cls(tuple((key, str(value)) for key, value in (values or {}).items()))

    def get(self, field_id: str) -> str | None:
        """The value of the first ``field_id`` field, None when absent."""
        for key, value in self.fields:
            if key == field_id:
                return value
        return None

    def has(self, field_id: str) -> bool:
        """Whether the field is present (``SF`` carries no data: presence is the flag)."""
        return any(key == field_id for key, _ in self.fields)

    @property
    def room(self) -> str | None:
        """RN: room number, ANS up to 8, leading zeros significant."""
        return self.get("RN")

    @property
    def date(self) -> str | None:
        """DA: date, YYMMDD."""
        return self.get("DA")

    @property
    def time(self) -> str | None:
        """TI: time, HHMMSS (kept verbatim; WA must echo it exactly)."""
        return self.get("TI")

    def __bytes__(self) -> bytes:
        return pack_record(self)


@dataclass(frozen=True)
class UnknownRecord(Record):
    """A record type this side does not speak; kept so the adapter can log it raw."""

    unknown_id: str = ""

    @property
    def record_id(self) -> str:
        return self.unknown_id


# -- Link control (spec §6, §8) ---------------------------------------------------------------


class RecordLS(Record):
    """Link Start: the PMS (re)started, the vendor must (re)describe; from us, an alive check."""

    RECORD_ID = "LS"


class RecordLD(Record):
    """Link Description: DA, TI, V# (vendor version), IF (interface family, PB = TMS/PBX)."""

    RECORD_ID = "LD"


class RecordLR(Record):
    """Link Record: ``LR|RIxx|FLxxxx|``, one per record type used; FL concatenates field IDs."""

    RECORD_ID = "LR"

    @property
    def described(self) -> str | None:
        """RI: the record type this LR describes."""
        return self.get("RI")


class RecordLA(Record):
    """Link Alive: ends our LR list; the PMS answers LA and the link is active."""

    RECORD_ID = "LA"


class RecordLE(Record):
    """Link End: buffer charges until the link returns; IFC waits 2 s for the peer's LE."""

    RECORD_ID = "LE"


class RecordLC(Record):
    """Link Configuration: the PMS's reply to an RT bitmask in LD."""

    RECORD_ID = "LC"


# -- Database resync and night audit ----------------------------------------------------------


class RecordDR(Record):
    """Database Resync request: only after data loss, never periodically."""

    RECORD_ID = "DR"


class RecordDS(Record):
    """Database resync Start: GI/GO with SF follow, real-time records may interleave."""

    RECORD_ID = "DS"


class RecordDE(Record):
    """Database resync End."""

    RECORD_ID = "DE"


class RecordNS(Record):
    """Night audit Start: postings wait until NE (date and time are irrelevant)."""

    RECORD_ID = "NS"


class RecordNE(Record):
    """Night audit End."""

    RECORD_ID = "NE"


# -- Guest data -------------------------------------------------------------------------------


class GuestRecord(Record):
    """Fields shared by GI/GO/GC: G# reservation, GN name, GL language, GS share flag, SF swap."""

    @property
    def reservation(self) -> str | None:
        """G#: reservation number, N up to 10."""
        return self.get("G#")

    @property
    def guest_name(self) -> str | None:
        """GN: guest name (its format is configured in the PMS)."""
        return self.get("GN")

    @property
    def language(self) -> str | None:
        """GL: guest language (EA, FR, GE, IT, JA, SP, ...)."""
        return self.get("GL")

    @property
    def sharer(self) -> bool:
        """GS: Y when a sharer joins or leaves an occupied room."""
        return self.get("GS") == "Y"

    @property
    def swap(self) -> bool:
        """SF (no data): the record belongs to a database resync."""
        return self.has("SF")


class RecordGI(GuestRecord):
    """Guest check-In; online to an empty room it sets every status (defaults for unlisted)."""

    RECORD_ID = "GI"


class RecordGO(GuestRecord):
    """Guest check-Out; in a resync, a vacant room (no G#)."""

    RECORD_ID = "GO"


class RecordGC(GuestRecord):
    """Guest data Change or room move (RO = source room); changes only the listed fields."""

    RECORD_ID = "GC"

    @property
    def old_room(self) -> str | None:
        """RO: the room the guest moves out of."""
        return self.get("RO")


class RecordRE(Record):
    """Room Equipment, both ways: CS, DN, ML from the PMS; RS, PU, ID, VM to it."""

    RECORD_ID = "RE"


# -- Wake-up ----------------------------------------------------------------------------------


class RecordWR(Record):
    """Wake-up Request: RN, DA, TI; no answer required."""

    RECORD_ID = "WR"


class RecordWC(Record):
    """Wake-up Clear: one call, or every call of the room with empty DA and TI."""

    RECORD_ID = "WC"


class RecordWA(Record):
    """Wake-up Answer: exactly one final WA per wake-up; TI echoes the request verbatim."""

    RECORD_ID = "WA"

    @property
    def status(self) -> str | None:
        """AS: OK, BY, NR, DE, UR, RY."""
        return self.get("AS")


# -- Postings ---------------------------------------------------------------------------------


class RecordPS(Record):
    """Posting Simple: RN, PT (C/M/T), TA (money, implied 2 decimals), DA/TI call start, P#."""

    RECORD_ID = "PS"

    @property
    def posting_number(self) -> int | None:
        """P#: sequence number 1-99999999, echoed in PA."""
        return _int_or_none(self.get("P#"))


class RecordPR(Record):
    """Posting Request (inquiry); the PMS answers PA (60 s timeout)."""

    RECORD_ID = "PR"


class RecordPA(Record):
    """Posting Answer: AS status, P# echoed, CT clear text."""

    RECORD_ID = "PA"

    @property
    def posting_number(self) -> int | None:
        """P#: the number of the posting this answers."""
        return _int_or_none(self.get("P#"))

    @property
    def status(self) -> str | None:
        """AS: OK, NA (night audit), NG (guest not found), RY (retry), UR (unprocessable)..."""
        return self.get("AS")


RECORD_TYPES: dict[str, type[Record]] = {
    cls.RECORD_ID: cls
    for cls in (
        RecordLS, RecordLD, RecordLR, RecordLA, RecordLE, RecordLC,
        RecordDR, RecordDS, RecordDE, RecordNS, RecordNE,
        RecordGI, RecordGO, RecordGC, RecordRE,
        RecordWR, RecordWC, RecordWA,
        RecordPS, RecordPR, RecordPA,
    )
}  # fmt: skip

# AS answer statuses that end a posting; any other (NA night audit, RY retry, BY busy) leaves
# it queued for a retry.
FINAL_POSTING_STATUSES = frozenset(
    {"OK", "AA", "AN", "BM", "CD", "CO", "DM", "DN", "FX", "IA", "NF", "NG", "NM", "NP", "UR"}
)


def parse_record(body: bytes) -> Record:
    """One record (the bytes between STX and ETX); raises RemoteProtocolError when malformed."""
    if FORBIDDEN.search(body) is not None:
        raise RemoteProtocolError(f"forbidden control byte in record {body[:40]!r}")
    text = body.decode("latin-1")
    if len(text) < 2 or (len(text) > 2 and text[2] != SEPARATOR):
        raise RemoteProtocolError(f"no record id followed by '|' in {body[:40]!r}")
    record_id, rest = text[:2], text[3:]
    segments = rest.split(SEPARATOR)
    if segments and segments[-1] == "":
        segments.pop()
    fields = []
    for segment in segments:
        if len(segment) < 2:
            raise RemoteProtocolError(f"field {segment!r} has no 2-character id in {body[:40]!r}")
        fields.append((segment[:2], segment[2:]))
    kind = RECORD_TYPES.get(record_id)
    if kind is None:
        return UnknownRecord(tuple(fields), record_id)
    return kind(tuple(fields))


def pack_record(record: Record) -> bytes:
    """The record's bytes (without framing); raises LocalProtocolError for unsendable data."""
    parts = [_checked(record.record_id, 2, "record id")]
    for key, value in record.fields:
        parts.append(_checked(key, 2, "field id") + _checked(value, None, f"field {key}"))
    text = SEPARATOR.join(parts) + SEPARATOR
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as err:
        raise LocalProtocolError(f"{record.record_id} carries a character beyond Latin-1") from err


def fias_date(moment: dt.datetime | dt.date) -> str:
    """D: ``YYMMDD``."""
    return moment.strftime("%y%m%d")


def fias_time(moment: dt.datetime | dt.time) -> str:
    """T: ``HHMMSS``."""
    return moment.strftime("%H%M%S")


def stamp(moment: dt.datetime) -> dict[str, str]:
    """The DA and TI fields for ``moment``."""
    return {"DA": fias_date(moment), "TI": fias_time(moment)}


def _checked(text: str, length: int | None, what: str) -> str:
    if length is not None and len(text) != length:
        raise LocalProtocolError(f"{what} {text!r} must be {length} characters")
    if _FORBIDDEN_TEXT.search(text) is not None:
        raise LocalProtocolError(f"{what} {text!r} contains '|' or a control character")
    return text


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
