"""The one media relay answering slowly or not at all: a late answer to an offer still places
the call; a relay that does not answer refuses new calls with 503, Retry-After and a CDR;
once it answers again, the BYE of a call set up before reaches it and the next call is
placed (the relay is never taken out of service unasked: docs/pbx.md, "The media relay's
control link")."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.sip.errors import NgError
from drivers.sip.ng import NgClient
from tests.integration.pbx.harness import Pbx, no_daemons_left, require_debs, wait_for
from tests.integration.pbx.test_retransmission import Caller, _callee, _status

SLOW_ANSWER_S = 1.4  # past one rtpengine_tout_ms (1 s), within the resent request's second
REFUSAL_WAIT_S = 30  # both tries of the offer and of the ping that follows take 4 s


@pytest.fixture(scope="module")
def relay_pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    """A PBX with a sipp UAS registered as 1002 answering every call."""
    require_debs()
    root = tmp_path_factory.mktemp("pbx")
    instance = Pbx(root, pike_exempt=["127.0.0.1"], kamailio_children=4)
    try:
        instance.start()
        uas = _callee(instance, tmp_path_factory.mktemp("callee"))
        try:
            yield instance
        finally:
            uas.kill()
            uas.wait(timeout=10)
    finally:
        instance.stop()
    assert no_daemons_left(root)


@contextlib.contextmanager
def _stopped_relay(pbx: Pbx) -> Iterator[None]:
    """rtpengine stopped (it neither answers nor dies) for the block, then going on."""
    pid = pbx.daemon_pid("rtpengine")
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _ng_requests_waiting(pbx: Pbx) -> int:
    """Bytes waiting in the relay's ng socket: requests a stopped rtpengine has not read."""
    local = f"0100007F:{int(pbx.settings['rtpengine_ng_port']):04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local:
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no UDP socket bound to {local}")


def _place(pbx: Pbx, caller: Caller, invite: bytes, wait_s: float) -> bytes:
    """Send ``invite``; its final answer (an assertion error if none came within ``wait_s``)."""
    caller.sock.sendto(invite, caller.target)
    return _final_answer(pbx, caller, wait_s)


def _final_answer(pbx: Pbx, caller: Caller, wait_s: float) -> bytes:
    """The final answer to the INVITE ``caller`` sent (an assertion error if none came
    within ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    while (left := deadline - time.monotonic()) > 0:
        caller.sock.settimeout(left)
        with contextlib.suppress(TimeoutError):
            reply = caller.sock.recv(65535)
            if _status(reply) >= 200 and b" INVITE\r\n" in reply:
                return reply
    raise AssertionError(f"no final answer within {wait_s} s\n{pbx.output()}")


def _hang_up(pbx: Pbx, caller: Caller, answer: bytes) -> None:
    caller.sock.sendto(caller.in_dialog("ACK", 2, answer), caller.target)
    caller.sock.sendto(caller.in_dialog("BYE", 3, answer), caller.target)
    wait_for(lambda: any(c["call_id"] == caller.call_id for c in pbx.cdrs()), 30, pbx.output)


def test_an_offer_the_relay_answers_late_still_places_the_call(relay_pbx: Pbx) -> None:
    """The relay goes on ``SLOW_ANSWER_S`` after the offer reached it, so Kamailio's first
    try has timed out and the resent request is answered (from rtpengine's cache)."""
    caller = Caller(relay_pbx)
    try:
        invite = caller.invite()
        with _stopped_relay(relay_pbx):
            caller.sock.sendto(invite, caller.target)
            wait_for(lambda: _ng_requests_waiting(relay_pbx) > 0, 30, relay_pbx.output)
            time.sleep(SLOW_ANSWER_S)
        answer = _final_answer(relay_pbx, caller, 10)
        assert _status(answer) == 200, answer
        _hang_up(relay_pbx, caller, answer)
    finally:
        caller.sock.close()
    [cdr] = [c for c in relay_pbx.cdrs() if c["call_id"] == caller.call_id]
    assert cdr["disposition"] == "answered"


def _relay_knows(pbx: Pbx, call_id: str) -> bool:
    """Whether rtpengine still holds ``call_id`` (ng ``query``)."""
    ng = NgClient("127.0.0.1", int(pbx.settings["rtpengine_ng_port"]))
    try:
        asyncio.run(ng.command("query", **{"call-id": call_id}))
    except NgError as err:
        return "unknown call" not in str(err).lower()
    return True


def test_a_relay_that_does_not_answer_refuses_with_503_and_is_used_again_at_once(
    relay_pbx: Pbx,
) -> None:
    """While the relay is hung a new call is refused; once it answers again, the BYE of a
    call set up before reaches it (its session and recording end) and a new call is placed."""
    holder, refused, later = Caller(relay_pbx), Caller(relay_pbx), Caller(relay_pbx)
    try:
        held = _place(relay_pbx, holder, holder.invite(), 10)
        assert _status(held) == 200, held
        holder.sock.sendto(holder.in_dialog("ACK", 2, held), holder.target)
        invite = refused.invite()
        with _stopped_relay(relay_pbx):
            refusal = _place(relay_pbx, refused, invite, REFUSAL_WAIT_S)
        assert _status(refusal) == 503, refusal
        assert b"media-relay-unavailable" in refusal
        assert b"Retry-After: 5" in refusal
        holder.sock.sendto(holder.in_dialog("BYE", 3, held), holder.target)
        wait_for(lambda: not _relay_knows(relay_pbx, holder.call_id), 10, relay_pbx.output)
        answer = _place(relay_pbx, later, later.invite(), 10)
        assert _status(answer) == 200, answer
        _hang_up(relay_pbx, later, answer)
        wait_for(lambda: {holder.call_id, refused.call_id} <= {c["call_id"] for c in
                 relay_pbx.cdrs()}, 30, relay_pbx.output)  # fmt: skip
    finally:
        for caller in (holder, refused, later):
            caller.sock.close()
    [cdr] = [c for c in relay_pbx.cdrs() if c["call_id"] == refused.call_id]
    assert cdr["hangup_cause"] == {"sip_code": 503, "reason": "media-relay-unavailable"}
