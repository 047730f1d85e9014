"""The sans-I/O sync session: both ends in memory over a lossy link, on a simulated clock."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from drivers.sync.hub import Answer, Hub
from drivers.sync.protocol import (
    Ack,
    CdrBatch,
    Command,
    ErrorReply,
    Frame,
    Hello,
    Message,
    SmsBatch,
    Welcome,
    decode,
    encode,
)
from drivers.sync.session import (
    Acked,
    BatchStream,
    ClientSession,
    Delivered,
    Lost,
    Refused,
    SessionConfig,
    SessionUp,
    Want,
)

pytestmark = pytest.mark.unit

CONFIG = SessionConfig(hello_timeout_s=5.0, ack_timeout_s=15.0, silence_s=30.0)
CDRS = BatchStream("cdr", CdrBatch, window=4, batch_size=10)
SMS = BatchStream("sms", SmsBatch)
HELLO = Hello("branch-1", "callmesh test")
TICK_S = 0.1


@dataclass
class Link:
    """One direction of the link: encoded frames, lost, repeated and reordered by a seed."""

    rng: random.Random
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    queue: list[list[Frame]] = field(default_factory=list)

    def put(self, message: Message) -> None:
        if self.rng.random() < self.loss:
            return
        copies = 2 if self.rng.random() < self.duplicate else 1
        self.queue += [encode(message)] * copies

    def take_frames(self) -> list[list[Frame]]:
        frames, self.queue = self.queue, []
        if self.rng.random() < self.reorder:
            self.rng.shuffle(frames)
        return frames

    def take(self) -> Iterator[Message]:
        for frames in self.take_frames():
            yield decode(frames)


@dataclass
class MemoryHq:
    """HQ in memory behind the hub: welcomes hello, stores records by (stream, seq)."""

    hub: Hub = field(default_factory=lambda: Hub(4, [Hello], {CdrBatch: "cdr", SmsBatch: "sms"}))
    stored: dict[tuple[str, int], bytes] = field(default_factory=dict)

    def answer(self, frames: list[Frame]) -> list[Message]:
        outcome = self.hub.receive(b"conn-1", "branch-1", frames)
        if isinstance(outcome, Answer):
            return [outcome.error]
        message = outcome.message
        replies: list[Message] = [Welcome(0.0)] if isinstance(message, Hello) else []
        if isinstance(message, CdrBatch | SmsBatch):
            stream = "cdr" if isinstance(message, CdrBatch) else "sms"
            for seq, record in message.records:
                self.stored.setdefault((stream, seq), record)
        self.hub.finished(outcome.site_id)
        ack = self.hub.ack(message)
        return replies if ack is None else [*replies, ack]


@dataclass
class Appliance:
    """The adapter's job done in memory: outboxes, reconnects, acks deleting entries."""

    outboxes: dict[str, dict[int, bytes]]
    up_link: Link
    session: ClientSession = field(init=False)
    lost: list[str] = field(default_factory=list)
    sent: int = 0

    def __post_init__(self) -> None:
        self.connect(0.0)

    def connect(self, now: float) -> None:
        self.session = ClientSession(CONFIG, [CDRS, SMS])
        for message in self.session.connect(HELLO, now):
            self.up_link.put(message)

    def step(self, replies: Iterator[Message], now: float) -> None:
        for reply in replies:
            for event in self.session.receive(reply, now):
                self.on_event(event, now)
        self.fill(now)
        lost = self.session.check(now)
        if lost is not None:
            self.on_event(lost, now)

    def on_event(self, event: object, now: float) -> None:
        if isinstance(event, Acked):
            for seq in event.seqs:
                self.outboxes[event.stream].pop(seq, None)
        elif isinstance(event, Lost):
            self.lost.append(event.reason)
            self.connect(now)

    def fill(self, now: float) -> None:
        for name, outbox in self.outboxes.items():
            while (want := self.session.want(name)) is not None:
                entries = sorted((s, r) for s, r in outbox.items() if s > want.after)
                if not entries:
                    break
                self.up_link.put(self.session.batch(name, entries[: want.limit], now))
                self.sent += len(entries[: want.limit])


def records(n: int) -> dict[int, bytes]:
    return {seq: f"record {seq}".encode() for seq in range(1, n + 1)}


def run_pair(
    seed: int, loss: float = 0.0, duplicate: float = 0.0, reorder: float = 0.0
) -> tuple[Appliance, MemoryHq, dict[str, dict[int, bytes]]]:
    """Run both ends until every outbox is empty (or 2 simulated hours pass)."""
    rng = random.Random(seed)
    up, down = Link(rng, loss, duplicate, reorder), Link(rng, loss, duplicate, reorder)
    original = {"cdr": records(95), "sms": records(7)}
    appliance = Appliance({k: dict(v) for k, v in original.items()}, up)
    hq = MemoryHq()
    now = 0.0
    while any(appliance.outboxes.values()) and now < 7200:
        now += TICK_S
        for frames in up.take_frames():
            for reply in hq.answer(frames):
                down.put(reply)
        appliance.step(down.take(), now)
    return appliance, hq, original


def stored_as_sent(hq: MemoryHq, original: dict[str, dict[int, bytes]]) -> bool:
    expected = {(k, seq): r for k, v in original.items() for seq, r in v.items()}
    return hq.stored == expected


def test_a_clean_link_delivers_every_record_once_without_a_resend() -> None:
    appliance, hq, original = run_pair(seed=1)
    assert not any(appliance.outboxes.values())
    assert stored_as_sent(hq, original)
    assert appliance.sent == 95 + 7
    assert appliance.lost == []


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    "faults",
    [
        {"loss": 0.2},
        {"duplicate": 0.5},
        {"reorder": 0.5},
        {"loss": 0.1, "duplicate": 0.3, "reorder": 0.5},
    ],
    ids=["loss", "duplicate", "reorder", "all"],
)
def test_a_faulty_link_still_stores_every_record_exactly_once(
    seed: int, faults: dict[str, float]
) -> None:
    appliance, hq, original = run_pair(seed, **faults)
    assert not any(appliance.outboxes.values()), "an outbox never drained"
    assert stored_as_sent(hq, original)
    if faults.get("loss"):
        assert appliance.lost, "a lost message ends a session"
        assert set(appliance.lost) <= {"no-welcome", "ack-timeout"}
    else:
        assert appliance.lost == [], "repeats and reordering cost no session"
        assert appliance.sent == 95 + 7, "nor any resend"


def test_lost_acks_end_the_session_after_the_ack_timeout_and_the_next_one_resends() -> None:
    rng = random.Random(3)
    appliance = Appliance({"cdr": records(10)}, Link(rng))
    up_now = [Welcome(0.0)]
    appliance.step(iter(up_now), 0.1)
    assert appliance.session.in_flight() == 1
    appliance.step(iter([]), 0.1 + CONFIG.ack_timeout_s)
    assert appliance.lost == []
    appliance.step(iter([]), 0.2 + CONFIG.ack_timeout_s)
    assert appliance.lost == ["ack-timeout"]
    assert appliance.session.in_flight() == 0, "a new session starts with nothing in flight"


def test_no_welcome_ends_the_session_after_the_hello_timeout() -> None:
    session = ClientSession(CONFIG, [CDRS])
    assert session.connect(HELLO, 100.0) == [HELLO]
    assert session.check(100.0 + CONFIG.hello_timeout_s) is None
    lost = session.check(100.1 + CONFIG.hello_timeout_s)
    assert lost == Lost("no-welcome", "HQ did not answer hello in time")


def test_an_error_instead_of_welcome_ends_the_session_with_its_error_id() -> None:
    session = ClientSession(CONFIG, [CDRS])
    session.connect(HELLO, 0.0)
    events = session.receive(ErrorReply("site-mismatch", "this key belongs to x", "hello"), 1.0)
    assert events == [Lost("refused", "site-mismatch: this key belongs to x")]
    assert not session.up


def test_messages_before_welcome_are_ignored_and_nothing_is_sent() -> None:
    session = ClientSession(CONFIG, [CDRS])
    session.connect(HELLO, 0.0)
    assert session.receive(Command("c1", "block", {}), 0.5) == []
    assert session.want("cdr") is None


def test_the_window_bounds_batches_in_flight_and_each_reads_after_the_last() -> None:
    session = up_session(0.0)
    for first in (1, 11, 21, 31):
        assert session.want("cdr") == Want("cdr", first - 1, 10)
        session.batch("cdr", [(seq, b"x") for seq in range(first, first + 10)], 1.0)
    assert session.want("cdr") is None
    assert session.in_flight() == 4


def test_acks_in_any_order_free_the_window_and_a_repeated_ack_is_harmless() -> None:
    session = up_session(0.0)
    for first in (1, 11):
        session.batch("cdr", [(seq, b"x") for seq in range(first, first + 10)], 1.0)
    second, first_ack = Ack("cdr", list(range(11, 21))), Ack("cdr", list(range(1, 11)))
    assert session.receive(second, 2.0) == [Acked("cdr", list(range(11, 21)))]
    assert session.receive(first_ack, 2.0) == [Acked("cdr", list(range(1, 11)))]
    assert session.receive(first_ack, 2.0) == [Acked("cdr", list(range(1, 11)))]
    assert session.in_flight() == 0
    assert session.want("cdr") == Want("cdr", 20, 10)


def test_acks_of_unknown_streams_or_without_entries_are_ignored() -> None:
    session = up_session(0.0)
    assert session.receive(Ack("telemetry", [1]), 1.0) == []
    assert session.receive(Ack("cdr", []), 1.0) == []


def test_a_refused_batch_ends_the_session_and_other_refusals_do_not() -> None:
    session = up_session(0.0)
    busy = ErrorReply("site-busy", "too much in flight", "rec-offer")
    assert session.receive(busy, 1.0) == [Refused(busy), Delivered(busy)]
    refused = ErrorReply("site-busy", "too much in flight", "sms-batch")
    assert session.receive(refused, 1.0)[-1] == Lost("hq-error", "site-busy")
    down = ErrorReply("db-unavailable", "retry later", "status")
    assert session.receive(down, 1.0)[-1] == Lost("hq-error", "db-unavailable")


def test_silence_ends_the_session_only_while_something_waits_for_hq() -> None:
    session = up_session(0.0)
    late = CONFIG.silence_s + 1
    assert session.check(late) is None
    assert session.check(late, busy=True) == Lost("silence", "nothing heard from HQ")
    session.receive(Command("c1", "block", {}), late)
    assert session.check(late, busy=True) is None


def test_other_messages_are_delivered_to_the_features() -> None:
    session = up_session(0.0)
    command = Command("c1", "block", {"iccid": "8949"})
    assert session.receive(command, 1.0) == [Delivered(command)]


def up_session(now: float) -> ClientSession:
    session = ClientSession(CONFIG, [CDRS, SMS])
    session.connect(HELLO, now)
    events = session.receive(Welcome(0.0), now)
    assert events == [SessionUp(Welcome(0.0))]
    return session
