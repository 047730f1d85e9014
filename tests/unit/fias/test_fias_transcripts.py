"""Golden transcripts: PMS records as the FIAS spec shows them, with the expected events.

Each ``transcripts/*.txt`` file is a script run through the TCP framing and the link state
machine on a fake clock: ``pms R`` feeds record R framed by STX/ETX, ``raw "..."`` feeds bytes
(a Python string literal, Latin-1), ``sent R`` asserts the next record we wrote,
``sent-description`` asserts LD + every LR + LA, ``sent-nothing`` that nothing was written,
``send R`` writes an application record, ``clock N`` advances time and ticks, ``resync``
requests a resync, ``postings allowed|paused`` checks the gate, ``expect ...`` the next event.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from drivers.fias.errors import RemoteProtocolError
from drivers.fias.grammar import Record, UnknownRecord, pack_record, parse_record
from drivers.fias.link import (
    LINK_RECORDS,
    FiasLink,
    LinkDown,
    LinkEvent,
    LinkUp,
    NightAudit,
    ResyncCompleted,
)
from drivers.fias.protocol import FiasProtocol

TRANSCRIPTS = sorted((Path(__file__).parent / "transcripts").glob("*.txt"))
STAMP = {"DA": "001015", "TI": "123046"}


def describe(event: LinkEvent | RemoteProtocolError) -> str:
    if isinstance(event, RemoteProtocolError):
        return f"error {event}"
    if isinstance(event, LinkUp):
        return "link-up"
    if isinstance(event, LinkDown):
        return f"link-down {event.reason}"
    if isinstance(event, NightAudit):
        return f"night-audit {'on' if event.running else 'off'}"
    if isinstance(event, ResyncCompleted):
        rooms = [
            f"{n}=" + (",".join(_guest(g.reservation, g.name) for g in r.guests) or "-")
            for n, r in sorted(event.rooms.items())
        ]
        return "resync " + " ".join(rooms)
    if isinstance(event, UnknownRecord):
        return f"unknown {bytes(event).decode('latin-1')}"
    assert isinstance(event, Record)
    return f"record {bytes(event).decode('latin-1')}"


def _guest(reservation: str, name: str) -> str:
    return f"{reservation}:{name}" if name else reservation


class Replay:
    """Runs one transcript through FiasProtocol and FiasLink."""

    def __init__(self) -> None:
        self.now = 0.0
        self.protocol = FiasProtocol()
        self.link = FiasLink(lambda: self.now, lambda: dict(STAMP), version="1.01")
        self.produced: list[str] = []
        self.sent: list[bytes] = []

    def step(self, verb: str, rest: str) -> None:
        if verb == "connect":
            self.link.connection_made()
        elif verb == "pms":
            self.feed(b"\x02" + rest.encode("latin-1") + b"\x03")
        elif verb == "raw":
            self.feed(ast.literal_eval(rest).encode("latin-1"))
        elif verb == "clock":
            self.now += float(rest)
            self.link.tick()
        elif verb == "send":
            self.link.send(parse_record(rest.encode("latin-1")))
        elif verb == "resync":
            assert self.link.request_resync()
        elif verb == "postings":
            assert self.link.postings_allowed is (rest == "allowed")
        else:
            raise AssertionError(f"unknown verb {verb!r}")
        self.drain()

    def feed(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        while True:
            try:
                record = self.protocol.next_event()
            except RemoteProtocolError as err:
                self.produced.append(describe(err))
                continue
            if record is None:
                break
            self.link.receive(record)

    def drain(self) -> None:
        for record in self.link.records_to_send():
            framed = self.protocol.send(record)
            assert framed == b"\x02" + pack_record(record) + b"\x03"
            self.sent.append(framed[1:-1])
        while (event := self.link.next_event()) is not None:
            self.produced.append(describe(event))


def description() -> list[bytes]:
    stamp = f"DA{STAMP['DA']}|TI{STAMP['TI']}|"
    return [
        f"LD|{stamp}V#1.01|IFPB|".encode(),
        *(f"LR|RI{ri}|FL{fl}|".encode() for ri, fl in LINK_RECORDS),
        f"LA|{stamp}".encode(),
    ]


def run(path: Path) -> None:
    replay = Replay()
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        verb, _, rest = line.partition(" ")
        where = f"{path.name}:{number}"
        if verb == "expect":
            assert replay.produced, f"{where}: nothing produced, expected {rest!r}"
            assert replay.produced.pop(0) == rest, where
        elif verb == "sent":
            assert replay.sent, f"{where}: nothing sent, expected {rest!r}"
            assert replay.sent.pop(0) == rest.encode("latin-1"), where
        elif verb == "sent-description":
            expected = description()
            assert replay.sent[: len(expected)] == expected, where
            del replay.sent[: len(expected)]
        elif verb == "sent-nothing":
            assert replay.sent == [], where
        else:
            replay.step(verb, rest)
    assert replay.produced == [], f"{path.name}: unexpected events {replay.produced}"
    assert replay.sent == [], f"{path.name}: unexpected records sent {replay.sent}"


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript_produces_exactly_the_expected_events(path: Path) -> None:
    run(path)


def _records(path: Path) -> list[bytes]:
    lines = path.read_text(encoding="latin-1").splitlines()
    return [line[4:].encode("latin-1") for line in lines if line.startswith(("pms ", "send "))]


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_every_transcript_record_round_trips_byte_for_byte(path: Path) -> None:
    for raw in _records(path):
        raw = raw.removeprefix(b" ")
        assert bytes(parse_record(raw)) == raw
