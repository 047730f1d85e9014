"""The dial-plan endpoint's request parsing and responses."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.sip.errors import ConfigValueError
from drivers.sip.routeserver import RouteRequestError, RouteServer, parse_request, response


def test_query_keeps_plus_signs_and_decodes_escapes() -> None:
    head = b"GET /route?caller=1001&dialled=+4930%20x&trunk=1 HTTP/1.1\r\nHost: a\r\n\r\n"
    assert parse_request(head) == ("/route", {"caller": "1001", "dialled": "+4930 x", "trunk": "1"})


@pytest.mark.parametrize(
    "head",
    [b"POST /route HTTP/1.1\r\n\r\n", b"GET /route\r\n\r\n", b"garbage", b"GET / FTP/1\r\n\r\n"],
)
def test_other_requests_are_refused(head: bytes) -> None:
    with pytest.raises(RouteRequestError):
        parse_request(head)


def test_oversized_heads_are_refused() -> None:
    with pytest.raises(RouteRequestError, match="too large"):
        parse_request(b"GET /route?" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_route_request_error(head: bytes) -> None:
    with contextlib.suppress(RouteRequestError):
        parse_request(head)


def test_response_is_json_with_length_and_close() -> None:
    raw = response(200, {"action": "extension"})
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: %d" % len(body) in head
    assert json.loads(body) == {"action": "extension"}


def test_the_route_endpoint_refuses_to_listen_beyond_loopback() -> None:
    with pytest.raises(ConfigValueError, match=r"must listen on loopback, not 192\.0\.2\.10"):
        RouteServer("192.0.2.10", 5066, lambda _query: {})


def test_a_route_endpoint_nothing_answers_with_yet_fails_the_request_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = RouteServer("127.0.0.1", 5066)
    head = b"GET /route?caller=1001&dialled=1002 HTTP/1.1\r\n\r\n"
    assert server._answer(head).startswith(b"HTTP/1.1 500 ")
    assert "routing decision failed" in caplog.text
    server.answer_with(lambda query: {"action": "extension", "target": query["dialled"]})
    _, body = server._answer(head).split(b"\r\n\r\n", 1)
    assert json.loads(body) == {"action": "extension", "target": "1002"}
