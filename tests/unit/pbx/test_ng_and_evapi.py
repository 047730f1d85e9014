"""rtpengine ng codec and Kamailio evapi netstrings: round trips and hostile bytes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.sip.errors import NetstringError, NgError
from drivers.sip.evapi import EvapiClient, NetstringDecoder, parse_event
from drivers.sip.ng import Bencodable, bdecode, bencode, decode_reply, encode_command


def test_offer_command_encodes_as_sorted_bencoded_dictionary() -> None:
    params: dict[str, Bencodable] = {"call-id": "x", "flags": ["record-call"]}
    datagram = encode_command("c1", "offer", **params)
    assert datagram == b"c1 d7:call-id1:x7:command5:offer5:flagsl11:record-callee"


def test_reply_decodes_with_its_cookie() -> None:
    assert decode_reply(b"abc d6:result4:ponge") == ("abc", {"result": "pong"})


@pytest.mark.parametrize(
    "raw", [b"", b"i12", b"5:ab", b"d3:keye", b"x", b"l", b"ie", b"4:abcdextra", b"l" * 5000]
)
def test_malformed_bencode_raises_ng_error(raw: bytes) -> None:
    with pytest.raises(NgError):
        bdecode(raw)


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_ng_error(raw: bytes) -> None:
    with contextlib.suppress(NgError):
        bdecode(raw)


values = st.recursive(
    st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(values)
def test_bencode_round_trips(value: object) -> None:
    assert bdecode(bencode(value)) == value  # type: ignore[arg-type]


def test_netstrings_split_whole_or_byte_by_byte() -> None:
    stream = b'15:{"event":"end"},2:{},'
    assert NetstringDecoder().feed(stream) == [b'{"event":"end"}', b"{}"]
    decoder = NetstringDecoder()
    got = [p for i in range(len(stream)) for p in decoder.feed(stream[i : i + 1])]
    assert got == [b'{"event":"end"}', b"{}"]


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"abc:def,", "not a number"),
        (b"3:abcX", "comma"),
        (b"99999999:", "exceeds"),
        (b"12345678901", "prefix"),
    ],
)
def test_bad_netstrings_raise_netstring_error(stream: bytes, message: str) -> None:
    with pytest.raises(NetstringError, match=message):
        NetstringDecoder().feed(stream)


@given(st.lists(st.binary(max_size=40), max_size=10))
def test_any_chunks_give_payloads_or_netstring_error(chunks: list[bytes]) -> None:
    decoder = NetstringDecoder(max_size=1000)
    try:
        for chunk in chunks:
            for payload in decoder.feed(chunk):
                assert len(payload) <= 1000
    except NetstringError:
        pass


def test_event_payload_must_be_a_json_object() -> None:
    assert parse_event(b'{"event": "invite"}') == {"event": "invite"}
    with pytest.raises(NetstringError):
        parse_event(b"[1]")
    with pytest.raises(NetstringError):
        parse_event(b"\xff{")


async def test_evapi_client_reconnects_after_a_reset_and_answers_rpc() -> None:
    connections = 0

    async def kamailio(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:  # the first connection is reset, as when Kamailio is killed
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
            return
        size = int((await reader.readuntil(b":"))[:-1])
        request = json.loads((await reader.readexactly(size + 1))[:-1])
        answer = json.dumps({"event": "rpc", "id": request["id"], "code": 200,
                             "body": json.dumps({"result": {"ok": True}})}).encode()  # fmt: skip
        writer.write(b"%d:%s," % (len(answer), answer))
        await writer.drain()
        await reader.read()

    server = await asyncio.start_server(kamailio, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = EvapiClient("127.0.0.1", port, lambda _event: None)
    client.start()
    try:
        for _ in range(1000):
            if connections >= 2 and client.connected.is_set():
                break
            await asyncio.sleep(0.01)
        assert await client.rpc("core.uptime") == {"ok": True}
    finally:
        await client.stop()
        server.close()
        await server.wait_closed()


async def test_an_rpc_sent_the_moment_the_client_is_connected_is_answered() -> None:
    async def kamailio(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = int((await reader.readuntil(b":"))[:-1])
        request = json.loads((await reader.readexactly(size + 1))[:-1])
        answer = json.dumps({"event": "rpc", "id": request["id"], "code": 200,
                             "body": json.dumps({"result": {"all": 0}})}).encode()  # fmt: skip
        writer.write(b"%d:%s," % (len(answer), answer))
        await writer.drain()
        await reader.read()

    server = await asyncio.start_server(kamailio, "127.0.0.1", 0)
    client = EvapiClient("127.0.0.1", server.sockets[0].getsockname()[1])
    client.start()
    try:
        await asyncio.wait_for(client.connected.wait(), 5)
        assert await client.rpc("dlg.stats_active") == {"all": 0}
    finally:
        await client.stop()
        server.close()
        await server.wait_closed()
