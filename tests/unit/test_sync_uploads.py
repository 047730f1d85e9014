"""The sans-I/O recording upload: both ends in memory over a lossy link, on a simulated clock."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import pytest

from drivers.sync.protocol import (
    ErrorReply,
    Frame,
    Message,
    RecChunk,
    RecCredit,
    RecDone,
    RecOffer,
    RecResume,
    decode,
    encode,
)
from drivers.sync.uploads import (
    ChunkDue,
    Complete,
    Confirmed,
    Credited,
    Held,
    Mismatch,
    Refused,
    Upload,
    UploadReceiver,
    UploadSender,
    Write,
)

pytestmark = pytest.mark.unit

CHUNK = 100
CREDIT = 8
RETRY_S = 5.0
STALL_S = 3.0
TICK_S = 0.1
SITE = "branch-1"


def upload_of(payload: bytes, rid: str = "rec-1") -> Upload:
    return Upload(1, rid, len(payload), hashlib.sha256(payload).hexdigest(), {"cdr_id": "c1"})


@dataclass
class Link:
    """The connection of one session: ordered and reliable, as zmq is, until it breaks.

    A break (seeded) loses everything in flight both ways, as a dropped zmq connection
    does; the ends notice when the upload stalls and open a new session.
    """

    rng: random.Random
    breaks: float
    up: list[list[Frame]] = field(default_factory=list)
    down: list[list[Frame]] = field(default_factory=list)
    broken: bool = False

    def send(self, queue: list[list[Frame]], messages: list[Message]) -> None:
        for message in messages:
            self.broken = self.broken or self.rng.random() < self.breaks
            if not self.broken:
                queue.append(encode(message))

    def take(self, queue: list[list[Frame]]) -> list[Message]:
        frames = list(queue)
        queue.clear()
        return [decode(f) for f in frames]


@dataclass
class MemoryHq:
    """HQ's end with its ``.part`` file in memory; what it stored, by recording id."""

    core: UploadReceiver = field(default_factory=lambda: UploadReceiver(CREDIT, 4))
    parts: dict[str, bytearray] = field(default_factory=dict)
    stored: dict[str, bytes] = field(default_factory=dict)

    def answer(self, message: Message, now: float) -> list[Message]:
        if isinstance(message, RecOffer):
            if message.recording_id in self.stored:
                return [RecDone(message.recording_id, True, "already stored")]
            part = self.parts.setdefault(message.recording_id, bytearray())
            opened = self.core.open(SITE, message, len(part), now)
            return [self._finish(opened)] if isinstance(opened, Complete) else [opened]
        assert isinstance(message, RecChunk)
        step = self.core.chunk(SITE, message, now)
        if not isinstance(step, Write):
            return [step]
        self.parts[message.recording_id] += message.data
        written = self.core.written(SITE, message)
        if isinstance(written, Complete):
            return [self._finish(written)]
        return [] if written is None else [written]

    def _finish(self, complete: Complete) -> Message:
        offer = complete.upload.offer
        data = bytes(self.parts.pop(offer.recording_id))
        if hashlib.sha256(data).hexdigest() != offer.sha256:
            return RecDone(offer.recording_id, False, "sha256-mismatch: upload again from 0")
        self.stored[offer.recording_id] = data
        return RecDone(offer.recording_id, True, "stored")

    def session_lost(self) -> None:
        for key in list(self.core.uploads):
            self.core.forget(key)


def send_due(sender: UploadSender, payload: bytes) -> list[Message]:
    out: list[Message] = []
    while (due := sender.next_chunk()) is not None:
        out.append(sender.chunk(payload[due.offset : due.offset + due.length]))
    return out


def run_upload(seed: int, breaks: float) -> tuple[int, MemoryHq]:
    """Upload one recording to the end; returns the sessions it took and HQ."""
    rng = random.Random(seed)
    payload = rng.randbytes(CHUNK * 37 + 11)
    sender, hq, link = UploadSender(CHUNK, RETRY_S), MemoryHq(), Link(rng, breaks)
    sessions, now = 1, 0.0
    link.send(link.up, [sender.offer(upload_of(payload), now)])
    for _ in range(20_000):
        now += TICK_S
        for message in link.take(link.up):
            link.send(link.down, hq.answer(message, now))
        for message in link.take(link.down):
            for event in sender.receive(message, now):
                if isinstance(event, Confirmed):
                    assert hq.stored["rec-1"] == payload
                    return sessions, hq
                assert isinstance(event, Credited), event
                link.send(link.up, send_due(sender, payload))
        if sender.stalled(now, STALL_S):
            sessions += 1
            link = Link(rng, breaks)
            sender.reset()
            hq.session_lost()
            link.send(link.up, [sender.offer(upload_of(payload), now)])
    raise AssertionError("the upload never completed")


def test_an_upload_on_a_clean_link_takes_one_session() -> None:
    sessions, hq = run_upload(1, breaks=0.0)
    assert sessions == 1
    assert hq.core.uploads == {}


@pytest.mark.parametrize("seed", range(8))
def test_an_upload_survives_connections_breaking_mid_upload(seed: int) -> None:
    sessions, hq = run_upload(seed, breaks=0.05)
    assert sessions > 1
    assert hq.core.uploads == {}
    assert hq.parts == {}


def test_a_reconnect_mid_upload_resumes_from_the_offset_hq_holds() -> None:
    payload = random.Random(7).randbytes(CHUNK * 20)
    sender, hq = UploadSender(CHUNK, RETRY_S), MemoryHq()
    resume = hq.answer(sender.offer(upload_of(payload), 0.0), 0.0)
    assert resume == [RecResume("rec-1", 0, CREDIT)]
    assert sender.receive(resume[0], 0.1) == [Credited()]
    for chunk in send_due(sender, payload)[:5]:
        hq.answer(chunk, 0.2)
    sender.reset()
    hq.session_lost()
    again = hq.answer(sender.offer(upload_of(payload), 1.0), 1.0)
    assert again == [RecResume("rec-1", 5 * CHUNK, CREDIT)]
    sender.receive(again[0], 1.1)
    assert sender.next_chunk() == ChunkDue(5 * CHUNK, CHUNK)


def test_a_lost_verdict_is_answered_again_when_the_recording_is_offered_again() -> None:
    payload = b"x" * (2 * CHUNK)
    sender, hq = UploadSender(CHUNK, RETRY_S), MemoryHq()
    [resume] = hq.answer(sender.offer(upload_of(payload), 0.0), 0.0)
    sender.receive(resume, 0.1)
    replies = [reply for chunk in send_due(sender, payload) for reply in hq.answer(chunk, 0.2)]
    assert replies == [RecDone("rec-1", True, "stored")]
    sender.reset()
    [done] = hq.answer(sender.offer(upload_of(payload), 5.0), 5.0)
    [event] = sender.receive(done, 5.1)
    assert isinstance(event, Confirmed)
    assert event.upload.seq == 1
    assert hq.stored["rec-1"] == payload


def test_a_repeated_or_early_chunk_is_answered_with_the_held_offset() -> None:
    hq = MemoryHq()
    hq.answer(RecOffer("r", 3 * CHUNK, "0" * 64), 0.0)
    first = RecChunk("r", 0, b"a" * CHUNK)
    assert hq.answer(first, 0.1) == []
    assert hq.answer(first, 0.2) == [RecResume("r", CHUNK, CREDIT)]
    assert hq.answer(RecChunk("r", 2 * CHUNK, b"c" * CHUNK), 0.3) == [RecResume("r", CHUNK, CREDIT)]
    assert hq.parts["r"] == b"a" * CHUNK


def test_credit_comes_back_in_batches_of_half_the_window() -> None:
    core = UploadReceiver(CREDIT, 4)
    core.open(SITE, RecOffer("r", 100 * CHUNK, "0" * 64), 0, 0.0)
    replies = []
    for i in range(CREDIT):
        chunk = RecChunk("r", i * CHUNK, b"x" * CHUNK)
        assert isinstance(core.chunk(SITE, chunk, 0.0), Write)
        replies.append(core.written(SITE, chunk))
    assert replies == [None, None, None, RecCredit("r", 4)] * 2


def test_on_a_slow_link_credit_comes_back_with_the_first_chunk_after_the_interval() -> None:
    # The sender's stall check counts from HQ's last answer: on a slow link HQ answers
    # once a chunk arrives credit_interval_s after its last answer, not half a window later.
    core = UploadReceiver(CREDIT, 4, credit_interval_s=1.0)
    core.open(SITE, RecOffer("r", 100 * CHUNK, "0" * 64), 0, 0.0)
    replies = []
    for i, at in enumerate([0.4, 0.8, 1.2, 1.6, 2.0, 2.4]):
        chunk = RecChunk("r", i * CHUNK, b"x" * CHUNK)
        assert isinstance(core.chunk(SITE, chunk, at), Write)
        replies.append(core.written(SITE, chunk))
    assert replies == [None, None, RecCredit("r", 3), None, None, RecCredit("r", 3)]


def test_a_chunk_for_no_open_upload_asks_for_a_new_offer() -> None:
    reply = UploadReceiver(CREDIT, 4).chunk(SITE, RecChunk("r", 0, b"x"), 0.0)
    assert isinstance(reply, ErrorReply)
    assert reply.error_id == "unknown-upload"


def test_a_site_at_its_limit_names_its_idlest_upload_to_close() -> None:
    core = UploadReceiver(CREDIT, 2)
    core.open(SITE, RecOffer("a", 10, "0" * 64), 0, 1.0)
    assert core.idlest(SITE) is None
    core.open(SITE, RecOffer("b", 10, "0" * 64), 0, 2.0)
    assert core.idlest(SITE) == (SITE, "a")
    assert core.idlest("other-site") is None
    assert core.incoming_bytes(SITE) == 20


def test_replies_about_another_recording_are_ignored() -> None:
    sender = UploadSender(CHUNK, RETRY_S)
    sender.offer(upload_of(b"x" * 10), 0.0)
    assert sender.receive(RecResume("rec-0", 0, 4), 0.1) == []
    assert sender.receive(RecDone("rec-0", True, "stored"), 0.1) == []
    assert sender.next_chunk() is None
    assert sender.current is not None


@pytest.mark.parametrize(
    ("reason", "kind", "paused"),
    [
        ("quota-exceeded: site full", Held, True),
        ("sha256-mismatch: upload again from 0", Mismatch, False),
        ("recording-too-large: over 1 MiB", Refused, False),
    ],
)
def test_hq_verdicts_end_the_upload_and_only_a_quota_refusal_pauses_on_its_own(
    reason: str, kind: type, paused: bool
) -> None:
    sender = UploadSender(CHUNK, RETRY_S)
    sender.offer(upload_of(b"x" * 10), 0.0)
    [event] = sender.receive(RecDone("rec-1", False, reason), 1.0)
    assert isinstance(event, kind)
    assert sender.current is None
    assert sender.may_offer(1.0) is not paused
    assert sender.may_offer(1.0 + RETRY_S)


def test_a_failed_try_pauses_offers_and_an_error_reply_only_drops_the_upload() -> None:
    sender = UploadSender(CHUNK, RETRY_S)
    sender.offer(upload_of(b"x" * 10), 0.0)
    sender.give_up(2.0)
    assert not sender.may_offer(2.0 + RETRY_S - 0.1)
    assert sender.may_offer(2.0 + RETRY_S)
    sender.offer(upload_of(b"x" * 10), 10.0)
    assert sender.receive(ErrorReply("unknown-upload", "offer again", "rec-1"), 11.0) == []
    assert sender.may_offer(11.0)


def test_a_stalled_upload_is_reported_after_the_timeout() -> None:
    sender = UploadSender(CHUNK, RETRY_S)
    assert not sender.stalled(100.0, STALL_S)
    sender.offer(upload_of(b"x" * 10), 0.0)
    assert not sender.stalled(STALL_S, STALL_S)
    assert sender.stalled(STALL_S + 0.1, STALL_S)
