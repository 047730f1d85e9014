"""HQ's side of the sync sessions: admission, attribution and acks, without sockets."""

from __future__ import annotations

import msgpack
import pytest

from drivers.sync.hub import Answer, Hub, Work
from drivers.sync.protocol import (
    Ack,
    CdrBatch,
    ErrorReply,
    Hello,
    SmsBatch,
    Status,
    Welcome,
    encode,
)

pytestmark = pytest.mark.unit


def hub(site_pending: int = 2) -> Hub:
    return Hub(site_pending, [Hello, Status], {CdrBatch: "cdr", SmsBatch: "sms"})


def test_a_message_is_admitted_as_work_of_the_site_its_key_belongs_to() -> None:
    h = hub()
    outcome = h.receive(b"conn", "branch-1", encode(Hello("someone-else", "x")))
    assert outcome == Work(b"conn", "branch-1", Hello("someone-else", "x"))
    assert h.connection("branch-1") == b"conn"
    assert h.sites() == ["branch-1"]


def test_frames_that_are_no_message_are_answered_with_their_error_id() -> None:
    h = hub()
    outcome = h.receive(b"conn", "branch-1", [b"\xc1"])
    assert isinstance(outcome, Answer)
    assert outcome.error.error_id == "bad-msgpack"
    outcome = h.receive(b"conn", "branch-1", [msgpack.packb({"v": 1, "t": "nope"})])
    assert isinstance(outcome, Answer)
    assert outcome.error.error_id == "unknown-type"
    assert h.connection("branch-1") is None, "an undecodable message names no connection"


def test_what_hq_itself_sends_is_refused_as_unexpected() -> None:
    outcome = hub().receive(b"conn", "branch-1", encode(Welcome(1.0)))
    assert outcome == Answer(
        b"conn", "branch-1", ErrorReply("unexpected-message", "welcome is not sent upstream")
    )


def test_a_site_past_its_pending_limit_is_answered_busy_until_work_finishes() -> None:
    h = hub(site_pending=2)
    status = encode(Status({}))
    assert isinstance(h.receive(b"a", "branch-1", status), Work)
    assert isinstance(h.receive(b"a", "branch-1", status), Work)
    busy = h.receive(b"a", "branch-1", status)
    assert busy == Answer(b"a", "branch-1", ErrorReply("site-busy", "too much in flight", "status"))
    assert isinstance(h.receive(b"b", "branch-2", status), Work), "other sites are not held up"
    h.finished("branch-1")
    assert isinstance(h.receive(b"a", "branch-1", status), Work)


def test_a_stored_batch_is_acked_on_its_stream_and_other_messages_are_not() -> None:
    h = hub()
    assert h.ack(SmsBatch([(3, b"x"), (4, b"y")])) == Ack("sms", [3, 4])
    assert h.ack(CdrBatch([(9, b"x")])) == Ack("cdr", [9])
    assert h.ack(Status({})) is None


def test_the_latest_connection_of_a_site_gets_its_pushes() -> None:
    h = hub()
    h.receive(b"old", "branch-1", encode(Status({})))
    h.receive(b"new", "branch-1", encode(Status({})))
    assert h.connection("branch-1") == b"new"
