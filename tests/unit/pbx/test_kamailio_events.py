"""Kamailio's events: golden captures parse to their records, and the template writes
exactly the keys the records read.

The ``.jsonl`` files in ``tests/golden/kamailio_events/`` are payloads a real Kamailio
sent over evapi (see the README there); each line is one event, in the order it came.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from appliance.pbx.calls import CallService
from appliance.pbx.cdr import CdrBuilder
from appliance.store import Store
from drivers.sip.evapi import EvapiClient
from drivers.sip.events import (
    LOCAL_FIELDS,
    Answer,
    CallOffer,
    End,
    EventError,
    Failed,
    Failover,
    Invite,
    KamailioEvent,
    Rejected,
    SipCallEvent,
    parse_kamailio_event,
)
from tests.procs import ROOT

GOLDEN = ROOT / "tests" / "golden" / "kamailio_events"
TEMPLATE = ROOT / "drivers" / "sip" / "kamailio.cfg.tmpl"

EXPECTED: dict[str, list[KamailioEvent]] = {
    "compliance-refused": [
        Rejected(
            call_id="EILmEVLLd10G8jHnxfNJpda.eNAEm87C",
            ts=1796625727.298803,
            from_user="1002",
            from_tag="1LMekd9Scdq8CeQGkemdS4tzLccA0zj4",
            to_user="030999110",
            request_user="030999110",
            source="127.0.0.1:42959",
            code=403,
            reason="dnc-site",
            route="mobile",
            dialled="030999110",
            refusal="+4930999110 is on this site's do-not-call list",
            recording="never",
            media_peer="0",
        ),
    ],
    "extension-answered": [
        Invite(
            call_id="7xomFtSJRdsN6jp88Of8bQrW7k1fUNEj",
            ts=1796625507.253803,
            from_user="1001",
            from_tag="xVRnpRkq43VeuFymSggG.pUSe3RTneoh",
            to_user="1002",
            request_user="1002",
            source="127.0.0.1:33684",
            route="extension",
            dialled="1002",
            recording="always",
        ),
        Answer(
            call_id="7xomFtSJRdsN6jp88Of8bQrW7k1fUNEj",
            ts=1796625507.25905,
            code=200,
            reason="answered",
            to_tag="sB9kgJyaZvfdbVTcicr4-B4eVyzrXsUs",
            h_entry=415,
            h_id=10858,
        ),
        End(
            call_id="7xomFtSJRdsN6jp88Of8bQrW7k1fUNEj",
            ts=1796625509.58371,
            reason="caller",
        ),
    ],
    "extension-busy": [
        Invite(
            call_id="eDmzCUnTYjcvkjrH.fbJYCLKeP8G0yao",
            ts=1796625515.747305,
            from_user="1001",
            from_tag="8Z5jJQtW6GoOmQ0IMDZRKU9hr7VZHngi",
            to_user="1003",
            request_user="1003",
            source="127.0.0.1:40920",
            route="extension",
            dialled="1003",
            recording="always",
        ),
        Failed(
            call_id="eDmzCUnTYjcvkjrH.fbJYCLKeP8G0yao",
            ts=1796625515.750866,
            code=486,
            reason="busy",
        ),
    ],
    "extension-cancelled": [
        Invite(
            call_id="kz8jvFBsLI0qHZwQza8x6oyLNl-RcN2D",
            ts=1796625524.564976,
            from_user="1002",
            from_tag="KzScv.acvHUPfz-auwsr4RhTxBTZQ0sV",
            to_user="1003",
            request_user="1003",
            source="127.0.0.1:60512",
            route="extension",
            dialled="1003",
            recording="always",
        ),
        Failed(
            call_id="kz8jvFBsLI0qHZwQza8x6oyLNl-RcN2D",
            ts=1796625524.568236,
            code=487,
            reason="cancelled",
        ),
    ],
    "extension-no-answer": [
        Invite(
            call_id="R6QT0-8CKYmei3jwzR6SPHpme3L4mvYw",
            ts=1796625518.839241,
            from_user="1001",
            from_tag="vruVM7AOcfGZpe5jr78HzSIKjZFkiV5I",
            to_user="1002",
            request_user="1002",
            source="127.0.0.1:45679",
            route="extension",
            dialled="1002",
            recording="always",
        ),
        Failed(
            call_id="R6QT0-8CKYmei3jwzR6SPHpme3L4mvYw",
            ts=1796625521.815213,
            code=408,
            reason="no-answer",
        ),
    ],
    "failover": [
        Invite(
            call_id="C1GYTXwPFuHLwPlOCS0qVzDSgmaU1Gql",
            ts=1796625636.458218,
            from_user="1001",
            from_tag="bay4RLWd90C3jbt6C6tnsPZsQeur62TR",
            to_user="0301234567",
            request_user="+49301234567",
            source="10.77.0.1:43309",
            route="national",
            trunk="c-sip",
            dialled="0301234567",
            recording="always",
            peer_site="gw",
            conversation="eda211a7-cf2e-5e12-b5b0-c1e60e501ed2",
        ),
        Failover(
            call_id="C1GYTXwPFuHLwPlOCS0qVzDSgmaU1Gql",
            ts=1796625637.457889,
            route="national",
            target="site:gw via c-sip",
            next="trunk:a-sip",
            code=408,
        ),
        Answer(
            call_id="C1GYTXwPFuHLwPlOCS0qVzDSgmaU1Gql",
            ts=1796625637.459083,
            code=200,
            reason="answered",
            to_tag="19445t1",
            h_entry=2567,
            h_id=11077,
        ),
        End(
            call_id="C1GYTXwPFuHLwPlOCS0qVzDSgmaU1Gql",
            ts=1796625637.483396,
            reason="caller",
        ),
    ],
    "gsm-inbound": [
        Invite(
            call_id="5L70k-MBHDA1YQ4IVtlq9Mbpz-wByEPQ",
            ts=1796625546.483369,
            from_user="+4930111222",
            from_name="+4930111222",
            from_tag="MQzcemkFRzh1MmZXgQtNXlHfyGwLRl1K",
            to_user="1001",
            request_user="1001",
            source="127.0.0.1:57516",
            route="extension",
            dialled="1001",
            from_media=True,
            recording="always",
            media_peer="127.0.0.1:57516",
            gsm="gsm-3",
        ),
        Answer(
            call_id="5L70k-MBHDA1YQ4IVtlq9Mbpz-wByEPQ",
            ts=1796625546.488532,
            code=200,
            reason="answered",
            to_tag="ZcZQuYJzb4EQgDVaMvf82Tl6jMrPJswj",
            h_entry=3399,
            h_id=1019,
        ),
        End(
            call_id="5L70k-MBHDA1YQ4IVtlq9Mbpz-wByEPQ",
            ts=1796625549.172404,
            reason="callee",
        ),
    ],
    "gsm-outbound": [
        Invite(
            call_id="wg4ro1jp0mRsJIc3EL6gRopYTB.XxYL4",
            ts=1796625550.773243,
            from_user="1003",
            from_tag="QgRSZ.5bPbyVxIRukLa9QVlzOIvis1uX",
            to_user="030555667",
            request_user="+4930555667",
            source="127.0.0.1:53844",
            route="mobile",
            trunk="gsm-0",
            dialled="030555667",
            recording="always",
            media_peer="127.0.0.1:57515",
        ),
        Answer(
            call_id="wg4ro1jp0mRsJIc3EL6gRopYTB.XxYL4",
            ts=1796625552.246016,
            code=200,
            reason="answered",
            to_tag="DIyK2wqW7okc4mOd1o36WSFXUPacXP40",
            h_entry=45,
            h_id=914,
        ),
        End(
            call_id="wg4ro1jp0mRsJIc3EL6gRopYTB.XxYL4",
            ts=1796625552.263021,
            reason="caller",
        ),
    ],
    "intersite-call": [
        Invite(
            call_id="a8983F5ySICEFD.Kybtygy1Uj1L05OjR",
            ts=1796625622.355299,
            from_user="1001",
            from_tag="imGL1VwIwhVt0WjLXg4VINpG4sL7l2B6",
            to_user="2001",
            request_user="2001",
            source="10.77.0.1:40705",
            route="site:branch-b",
            dialled="2001",
            recording="always",
            peer_site="branch-b",
            conversation="c42b7024-1c5d-5832-a540-3b79ffccdf28",
        ),
        Invite(
            call_id="a8983F5ySICEFD.Kybtygy1Uj1L05OjR",
            ts=1796625622.371419,
            from_user="1001",
            from_name="Alice (Branch A)",
            from_tag="imGL1VwIwhVt0WjLXg4VINpG4sL7l2B6",
            to_user="2001",
            request_user="2001",
            source="10.77.0.1:5060",
            route="site:branch-a",
            dialled="2001",
            recording="always",
            peer_site="branch-a",
            caller_ext="1001",
            conversation="c42b7024-1c5d-5832-a540-3b79ffccdf28",
        ),
    ],
    "intersite-transfer": [
        Invite(
            call_id="zoCqj5tlCdGrlx1Q1K1U6fCZ2cCoN-uB",
            ts=1796625627.960941,
            from_user="1001",
            from_tag="7izOYdKsdYB4nb0WcNk-oMPew50s4g61",
            to_user="3001",
            request_user="3001",
            source="10.77.0.1:41632",
            route="site:gw",
            dialled="3001",
            recording="always",
            peer_site="gw",
            conversation="6dd08e39-417d-57e5-a82a-d31c3b4d3e0c",
            referred_by="2001",
        ),
        Invite(
            call_id="klTfS3VfFy9UH-lSUNQ8RiBo3z3-Ng0y",
            ts=1796625632.052691,
            from_user="2001",
            from_tag="17XdMnaWK.-9h1-Tz3n90eLmh5awSsc7",
            to_user="3001",
            request_user="3001",
            source="10.77.0.2:35560",
            route="site:gw",
            dialled="3001",
            recording="always",
            peer_site="gw",
            conversation="d6d4c620-ff0c-5b6c-807f-952cbffe9c46",
            referred_by="1001",
            replaces="2adUHZxEw5KQK65-eYFBIXjuki708c3D",
        ),
        Invite(
            call_id="klTfS3VfFy9UH-lSUNQ8RiBo3z3-Ng0y",
            ts=1796625632.058672,
            from_user="2001",
            from_name="Bob (Branch B)",
            from_tag="17XdMnaWK.-9h1-Tz3n90eLmh5awSsc7",
            to_user="3001",
            request_user="3001",
            source="10.77.0.2:5060",
            route="site:branch-b",
            dialled="3001",
            recording="always",
            peer_site="branch-b",
            caller_ext="2001",
            conversation="d6d4c620-ff0c-5b6c-807f-952cbffe9c46",
            referred_by="1001",
            replaces="2adUHZxEw5KQK65-eYFBIXjuki708c3D",
        ),
    ],
    "unknown-extension": [
        Rejected(
            call_id="ZqtDz6r2qem7Bzff5UzyS-xqAYLbnaK5",
            ts=1796625527.258164,
            from_user="1001",
            from_tag="a.4Ne2CvoXyCrEOq-8OAKDw3wOT7ap56",
            to_user="1999",
            request_user="1999",
            source="127.0.0.1:34354",
            code=404,
            reason="unknown-extension",
            dialled="1999",
            recording="never",
        ),
    ],
}


def golden(name: str) -> list[dict[str, Any]]:
    """The events of one capture, as decoded JSON objects."""
    lines = (GOLDEN / f"{name}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_every_capture_has_its_expected_records() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.jsonl")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_golden_event_parses_to_its_record(name: str) -> None:
    assert [parse_kamailio_event(doc) for doc in golden(name)] == EXPECTED[name]


@pytest.fixture
def calls(tmp_path: Path) -> Iterator[CallService]:
    store = Store.open(tmp_path / "store", 16)
    yield CallService(store, CdrBuilder("site-a", {"1001": "Alice", "1002": "Bob"}))
    store.close()


@pytest.mark.parametrize(
    ("name", "disposition", "cause"),
    [
        ("extension-answered", "answered", {"sip_code": 200, "reason": "normal-clearing"}),
        ("extension-busy", "busy", {"sip_code": 486, "reason": "busy"}),
        ("extension-no-answer", "no-answer", {"sip_code": 408, "reason": "no-answer"}),
        ("extension-cancelled", "cancelled", {"sip_code": 487, "reason": "cancelled"}),
        ("unknown-extension", "failed", {"sip_code": 404, "reason": "unknown-extension"}),
        ("compliance-refused", "refused", {"sip_code": 403, "reason": "dnc-site"}),
    ],
)
def test_a_captured_call_gives_its_cdr(
    calls: CallService, name: str, disposition: str, cause: dict[str, Any]
) -> None:
    for event in EXPECTED[name]:
        assert not isinstance(event, Failover)
        calls.handle(event)
    calls.flush()
    [cdr] = [msgpack.unpackb(p, raw=False) for _, p in calls.outbox.read_batch()]
    assert (cdr["disposition"], cdr["hangup_cause"]) == (disposition, cause)


def test_a_captured_failover_names_the_next_hop_in_the_cdr(calls: CallService) -> None:
    invite, failover, answer, end = EXPECTED["failover"]
    assert isinstance(invite, Invite)
    assert isinstance(failover, Failover)
    assert isinstance(answer, Answer)
    assert isinstance(end, End)
    calls.handle(invite)
    calls.failed_over(failover)
    calls.handle(answer)
    calls.handle(end)
    calls.flush()
    [cdr] = [msgpack.unpackb(p, raw=False) for _, p in calls.outbox.read_batch()]
    assert (cdr["trunk"], cdr["peer_site"], cdr["failovers"]) == ("a-sip", None, 1)


def _route(name: str) -> str:
    """The body of ``route[name]`` in the template."""
    text = TEMPLATE.read_text()
    start = text.index(f"route[{name}] {{")
    return text[start : text.index("\n}\n", start)]


def _written(text: str) -> list[str]:
    """The keys a route writes: ``jansson_set`` keys, or fields of ``$xavp(event)``."""
    return re.findall(r'jansson_set\("[a-z]+", "([a-z_]+)"', text) + re.findall(
        r"\$xavp\(event(?:\[0\])?=>([a-z_]+)\) =", text
    )


def _keys(record: type[Any], *, own: bool = False) -> set[str]:
    names = {f.name for f in dataclasses.fields(record)} - LOCAL_FIELDS
    base = {f.name for f in dataclasses.fields(SipCallEvent)}
    return names - base if own else names


def test_the_template_writes_exactly_the_keys_the_call_records_read() -> None:
    body = _route("EVENT")
    common, _, rest = body.partition('if ($var(event) == "invite" || $var(event) == "rejected")')
    offer, _, answer = rest.partition('if ($var(event) == "answer")')
    assert set(_written(common)) == _keys(SipCallEvent) | {"event"}
    assert set(_written(offer)) == _keys(CallOffer, own=True)
    assert set(_written(answer)) == _keys(Answer, own=True)
    for record in (Invite, Rejected, End, Failed):
        assert _keys(record, own=True) <= _keys(CallOffer, own=True)


def test_the_template_writes_exactly_the_keys_the_failover_record_reads() -> None:
    assert set(_written(_route("FAILOVER"))) == _keys(Failover) | {"event"}


INVITE = golden("extension-answered")[0]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({**INVITE, "event": "bye"}, "unknown Kamailio event 'bye'"),
        ({k: v for k, v in INVITE.items() if k != "event"}, "unknown Kamailio event 'None'"),
        ({**INVITE, "call_id": ""}, "invite event without call_id"),
        ({k: v for k, v in INVITE.items() if k != "ts"}, "invite event without ts"),
        ({**INVITE, "ts": "soon"}, "invite event: ts 'soon' is invalid"),
        ({**INVITE, "ts": "nan"}, "invite event: ts 'nan' is invalid"),
        ({**INVITE, "code": "486"}, "invite event: code '486' is invalid"),
        ({**INVITE, "from_trunk": 2}, "invite event: from_trunk '2' is invalid"),
        ({**INVITE, "from_user": 1001}, "invite event: from_user '1001' is invalid"),
        ({**INVITE, "event": "answer", "h_id": True}, "answer event: h_id 'True' is invalid"),
    ],
)
def test_a_malformed_event_is_refused_with_the_reason(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(EventError, match=re.escape(message)) as refused:
        parse_kamailio_event(doc)
    assert refused.value.error_id == "kamailio-event-invalid"


def test_keys_a_newer_template_adds_are_ignored() -> None:
    assert parse_kamailio_event({**INVITE, "novel": 1}) == EXPECTED["extension-answered"][0]


async def test_the_evapi_client_logs_a_malformed_event_whole_and_delivers_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = json.dumps({**INVITE, "ts": "soon"}).encode()
    good = json.dumps(INVITE).encode()

    async def kamailio(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"%d:%s,%d:%s," % (len(bad), bad, len(good), good))
        await writer.drain()
        await reader.read()

    server = await asyncio.start_server(kamailio, "127.0.0.1", 0)
    received: asyncio.Queue[KamailioEvent] = asyncio.Queue()
    client = EvapiClient("127.0.0.1", server.sockets[0].getsockname()[1], received.put_nowait)
    client.start()
    try:
        with caplog.at_level(logging.ERROR, logger="drivers.sip.evapi"):
            assert await asyncio.wait_for(received.get(), 5) == EXPECTED["extension-answered"][0]
        [refused] = [
            r for r in caplog.records if getattr(r, "error_id", "") == "kamailio-event-invalid"
        ]
        assert json.loads(refused.__dict__["event"]) == {**INVITE, "ts": "soon"}
    finally:
        await client.stop()
        server.close()
        await server.wait_closed()


def test_the_template_writes_each_event_key_with_the_type_its_record_reads() -> None:
    """A string key (and ``ts``, Kamailio's ``"<s>.<us>"``) forced to a string
    (``"" + ...``), a number or flag to an integer (``{s.int}``): a ``$var`` holding the
    other type would be encoded as such, and the event refused."""
    kinds = {
        f.name: str(f.type)
        for record in (Invite, Answer, End)
        for f in dataclasses.fields(record)
        if f.name not in LOCAL_FIELDS
    }
    assigned = re.findall(r"\$xavp\(event(?:\[0\])?=>([a-z_]+)\) = (.+);", _route("EVENT"))
    assert {key for key, _ in assigned} == set(kinds) | {"event"}
    for key, value in assigned:
        if kinds.get(key, "str") in ("str", "float"):
            assert value.startswith(('"" + ', "$si + ")), (key, value)
        else:
            assert value.endswith("{s.int})"), (key, value)
