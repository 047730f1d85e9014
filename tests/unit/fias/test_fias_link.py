"""The link state machine on a fake clock: start-up, alive checks, LE, reconnect, resync."""

from __future__ import annotations

import random

from drivers.fias.grammar import Record, parse_record
from drivers.fias.link import (
    FiasLink,
    LinkDown,
    LinkState,
    LinkTiming,
    LinkUp,
    ResyncFailed,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_link(clock: Clock) -> FiasLink:
    stamp = {"DA": "001015", "TI": "123046"}
    return FiasLink(clock, lambda: dict(stamp), rng=random.Random(7))


def ids(records: list[Record]) -> list[str]:
    return [r.record_id for r in records]


def r(text: str) -> Record:
    return parse_record(text.encode())


def active(clock: Clock) -> FiasLink:
    link = make_link(clock)
    link.connection_made()
    link.receive(r("LS|"))
    link.records_to_send()
    link.receive(r("LA|"))
    assert link.next_event() == LinkUp()
    return link


def test_a_silent_pms_gets_our_description_after_three_seconds() -> None:
    clock = Clock()
    link = make_link(clock)
    link.connection_made()
    clock.now = 2.9
    link.tick()
    assert link.records_to_send() == []
    clock.now = 3.0
    link.tick()
    sent = ids(link.records_to_send())
    assert sent[0] == "LD"
    assert sent[-1] == "LA"
    assert set(sent[1:-1]) == {"LR"}


def test_no_la_within_thirty_seconds_asks_for_a_reconnect() -> None:
    clock = Clock()
    link = make_link(clock)
    link.connection_made()
    link.receive(r("LS|"))
    clock.now = 29.9
    link.tick()
    closes_at_29_9 = link.should_close
    clock.now = 30.0
    link.tick()
    assert (closes_at_29_9, link.should_close) == (False, True)
    assert link.state is LinkState.STARTING


def test_an_unanswered_alive_check_drops_the_link() -> None:
    clock = Clock()
    link = active(clock)
    clock.now = 300.0
    link.tick()
    assert ids(link.records_to_send()) == ["LS"]
    clock.now = 330.0
    link.tick()
    assert link.next_event() == LinkDown("no-answer")
    assert link.should_close


def test_traffic_from_the_pms_postpones_the_alive_check() -> None:
    clock = Clock()
    link = active(clock)
    clock.now = 200.0
    link.receive(r("RE|RN1|MLY|"))
    clock.now = 300.0
    link.tick()
    assert link.records_to_send() == []


def test_le_is_answered_and_postings_stop_until_the_pms_starts_again() -> None:
    clock = Clock()
    link = active(clock)
    link.receive(r("LE|"))
    assert link.next_event() == LinkDown("link-end")
    assert ids(link.records_to_send()) == ["LE"]
    assert not link.postings_allowed
    clock.now = 60.0
    link.tick()
    assert link.should_close, "no LS after the LE: reconnect"


def test_reconnect_delays_grow_with_jitter_up_to_the_ceiling_and_reset_on_link_up() -> None:
    clock = Clock()
    link = make_link(clock)
    delays = [link.connection_lost() for _ in range(10)]
    timing = LinkTiming()
    assert timing.reconnect_min / 2 <= delays[0] <= timing.reconnect_min
    assert delays[3] > delays[0]
    assert max(delays) <= timing.reconnect_max
    link.connection_made()
    link.receive(r("LS|"))
    link.receive(r("LA|"))
    assert link.connection_lost() <= timing.reconnect_min


def test_no_postings_during_a_swap_and_a_late_ds_fails_the_resync() -> None:
    clock = Clock()
    link = active(clock)
    assert link.request_resync()
    assert not link.postings_allowed
    assert not link.request_resync(), "one resync at a time"
    clock.now = 30.0
    link.tick()
    assert link.next_event() == ResyncFailed()
    assert link.postings_allowed


def test_nothing_may_be_requested_before_the_link_is_active() -> None:
    link = make_link(Clock())
    link.connection_made()
    assert not link.request_resync()
    assert not link.postings_allowed
