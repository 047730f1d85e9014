"""Call features through the proxy: hold/resume, early media, blind and attended transfer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.integration.pbx.harness import Event, Pbx, connect_call, phones


def _media(status: str, state: str | None = None) -> Callable[[Event], bool]:
    return lambda e: (
        e["ev"] == "media" and e["status"] == status and (state is None or e["state"] == state)
    )


def test_hold_and_resume_renegotiate_media_in_one_call(pbx: Pbx, tmp_path: Path) -> None:
    with phones(pbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
        connect_call(alice, bob)
        alice.send("hold")
        alice.wait(_media("local-hold"))
        bob.wait(_media("remote-hold"))
        alice.send("unhold")
        alice.wait(_media("active", "CONFIRMED"))
        bob.wait(_media("active", "CONFIRMED"))
        alice.send("hangup")
        bob.state("DISCONNECTED")
    cdr = pbx.cdr_for(lambda c: c["caller"]["number"] == "1001" and c["answer"] is not None)
    assert cdr["disposition"] == "answered"


def test_early_media_flows_before_answer(pbx: Pbx, tmp_path: Path) -> None:
    with phones(pbx, tmp_path, ("1001", 1000), ("1003", 600)) as (alice, carol):
        alice.send("call", to="1003")
        carol.wait(lambda e: e["ev"] == "incoming")
        carol.send("early")
        alice.wait(_media("active", "EARLY"))
        carol.send("answer")
        alice.state("CONFIRMED")
        alice.send("hangup")
        carol.state("DISCONNECTED")


def test_blind_transfer_by_refer_connects_the_transferee(pbx: Pbx, tmp_path: Path) -> None:
    specs = (("1001", 1000), ("1002", 600), ("1003", 300))
    with phones(pbx, tmp_path, *specs) as (alice, bob, carol):
        connect_call(alice, bob)
        alice.send("xfer", to="1003")
        carol.answer()
        alice.send("hangup")
        alice.state("DISCONNECTED")
        carol.send("hangup")
        carol.state("DISCONNECTED")
    transferred = pbx.cdr_for(
        lambda c: c["caller"]["number"] == "1002" and c["callee"]["number"] == "1003"
    )
    assert transferred["disposition"] == "answered"
    first = pbx.cdr_for(
        lambda c: c["caller"]["number"] == "1001" and c["callee"]["number"] == "1002"
    )
    assert transferred["conversation_id"] == first["conversation_id"]


def test_attended_transfer_replaces_the_consultation_call(pbx: Pbx, tmp_path: Path) -> None:
    specs = (("1001", 1000), ("1002", 600), ("1003", 300))
    with phones(pbx, tmp_path, *specs) as (alice, bob, carol):
        connect_call(alice, bob)
        alice.send("consult", to="1003")
        carol.answer()
        alice.send("xfer_attended")
        bob.wait(lambda e: e["ev"] == "transferring")
        carol.wait(lambda e: e["ev"] == "replaced")
        carol.state("CONFIRMED")
        carol.send("hangup")
        bob.state("DISCONNECTED")
    transferred = pbx.cdr_for(
        lambda c: c["caller"]["number"] == "1002" and c["callee"]["number"] == "1003"
    )
    consult = pbx.cdr_for(
        lambda c: c["caller"]["number"] == "1001" and c["callee"]["number"] == "1003"
    )
    assert transferred["disposition"] == "answered"
    assert transferred["conversation_id"] == consult["conversation_id"]
