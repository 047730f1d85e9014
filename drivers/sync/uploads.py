"""Recording uploads on the sync link, sans-I/O: both ends' state, messages and the time in.

Theory of operation: the appliance offers one recording at a time (``rec-offer``: id,
size, sha256). HQ answers with the offset it already holds and a credit of chunks
(``rec-resume``); the sender sends chunks from that offset while credit lasts, and HQ
gives credit back in batches of half its window (``rec-credit``) as it writes them, or
with the first chunk written ``CREDIT_INTERVAL_S`` after its last answer. A
chunk is taken only at exactly the offset HQ holds; anything else (a lost, repeated or
reordered chunk) is answered with ``rec-resume`` at the held offset, so the upload goes
on from there. When HQ holds the offered size it checks the sha256 and ends the upload
with ``rec-done`` (ok, or the reason it refused). A new session offers again and HQ
resumes from what its file holds, so an upload survives any reconnect.

Within a session the protocol counts on what a zmq connection gives: nothing lost,
repeated or reordered (loss comes as the connection breaking, and a stalled upload
ends the session). A chunk repeated or reordered inside a session would have each
chunk in flight behind it answered with a ``rec-resume``, each of which resends the
window.

``UploadSender`` is the appliance's end, ``UploadReceiver`` HQ's. Neither opens a file,
hashes, counts tries durably or touches a socket: the adapters
(appliance/sync/recordings.py, aggregator/recordings.py) read and write the bytes the
cores ask for and keep what must survive a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drivers.sync.protocol import (
    ErrorReply,
    Message,
    RecChunk,
    RecCredit,
    RecDone,
    RecOffer,
    RecResume,
)

QUOTA_EXCEEDED = "quota-exceeded"
# The sender's stall check counts from HQ's last answer. On a fast link half a window
# is written in milliseconds; on a slow one HQ answers with the first chunk written
# this long after its last answer, so answers are at most this plus one chunk's time on
# the wire apart (5.2 s for 1 MiB chunks at 2 Mbit/s, inside ``sync.ack_timeout_s``)
# whatever the window, and a fast link is not charged an answer per chunk.
CREDIT_INTERVAL_S = 1.0
SHA256_MISMATCH = "sha256-mismatch"


@dataclass
class Upload:
    """The recording the sender is uploading: where it stands and the credit it holds."""

    seq: int
    recording_id: str
    size: int
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)
    offset: int = -1
    credit: int = 0
    last_progress: float = 0.0


@dataclass(frozen=True)
class ChunkDue:
    """Read up to ``length`` bytes of the current recording from ``offset``."""

    offset: int
    length: int


@dataclass(frozen=True)
class Credited:
    """HQ said where to go on, or gave credit: chunks are due now."""


@dataclass(frozen=True)
class Confirmed:
    """HQ verified and stored ``upload``: it leaves the outbox."""

    upload: Upload


@dataclass(frozen=True)
class Mismatch:
    """HQ's sha256 differs from the offer's: the file changed, or the bytes did on the way."""

    upload: Upload
    reason: str


@dataclass(frozen=True)
class Refused:
    """HQ refused ``upload`` for ``reason``; a try for the sender to count."""

    upload: Upload
    reason: str


@dataclass(frozen=True)
class Held:
    """HQ is out of space for this site: offers pause, and no try is counted."""

    upload: Upload
    reason: str


SenderEvent = Credited | Confirmed | Mismatch | Refused | Held


class UploadSender:
    """The appliance's end: one upload at a time, chunks while credit lasts, pauses."""

    def __init__(self, chunk_size: int, retry_s: float) -> None:
        self.chunk_size = chunk_size
        self.retry_s = retry_s
        self.current: Upload | None = None
        self.bytes_sent = 0
        self._hold_until = 0.0

    def reset(self) -> None:
        """Forget the session; the next one offers again from scratch."""
        self.current = None
        self._hold_until = 0.0

    def may_offer(self, now: float) -> bool:
        """True when nothing is uploading and offers are not paused."""
        return self.current is None and now >= self._hold_until

    def offer(self, upload: Upload, now: float) -> RecOffer:
        """Start ``upload``: the offer to send."""
        upload.offset, upload.credit, upload.last_progress = -1, 0, now
        self.current = upload
        return RecOffer(upload.recording_id, upload.size, upload.sha256, upload.meta)

    def give_up(self, now: float) -> None:
        """The current try failed on this side: drop it and pause offers."""
        self.current = None
        self._hold_until = now + self.retry_s

    def next_chunk(self) -> ChunkDue | None:
        """The bytes to read next, or None while HQ's answer or credit is awaited."""
        upload = self.current
        if upload is None or upload.offset < 0 or upload.credit <= 0:
            return None
        if upload.offset >= upload.size:
            return None
        return ChunkDue(upload.offset, min(self.chunk_size, upload.size - upload.offset))

    def chunk(self, data: bytes) -> RecChunk:
        """The chunk carrying ``data``, read as ``next_chunk`` asked; it spends a credit."""
        upload = self.current
        assert upload is not None, "chunk only after next_chunk asked for bytes"
        message = RecChunk(upload.recording_id, upload.offset, data)
        upload.offset += len(data)
        upload.credit -= 1
        self.bytes_sent += len(data)
        return message

    def stalled(self, now: float, timeout: float) -> bool:
        """True when the current upload made no progress for ``timeout`` seconds."""
        return self.current is not None and now - self.current.last_progress > timeout

    def receive(self, message: Message, now: float) -> list[SenderEvent]:
        """A recording reply from HQ; replies about another recording are stale and ignored."""
        upload = self.current
        if upload is None or _about(message) != upload.recording_id:
            return []
        upload.last_progress = now
        if isinstance(message, RecResume):
            upload.offset, upload.credit = message.offset, message.credit
            return [Credited()]
        if isinstance(message, RecCredit):
            upload.credit += message.credit
            return [Credited()]
        if isinstance(message, RecDone):
            self.current = None
            return [self._verdict(upload, message, now)]
        if isinstance(message, ErrorReply):
            self.current = None
        return []

    def _verdict(self, upload: Upload, done: RecDone, now: float) -> SenderEvent:
        if done.ok:
            return Confirmed(upload)
        error_id = done.reason.split(":")[0]
        if error_id == QUOTA_EXCEEDED:
            self._hold_until = now + self.retry_s
            return Held(upload, done.reason)
        if error_id == SHA256_MISMATCH:
            return Mismatch(upload, done.reason)
        return Refused(upload, done.reason)


def _about(message: Message) -> object:
    """The recording a reply is about (``ref`` for an error)."""
    return getattr(message, "recording_id", getattr(message, "ref", None))


@dataclass
class Incoming:
    """An upload HQ is receiving: the offer, the bytes it holds, the credit it owes."""

    offer: RecOffer
    held: int
    owed: int = 0
    active: float = 0.0
    answered: float = 0.0


@dataclass(frozen=True)
class Write:
    """Append the chunk's bytes to the upload's file, then call ``written``."""

    chunk: RecChunk


@dataclass(frozen=True)
class Complete:
    """The upload holds the offered size: verify its sha256 and answer ``rec-done``."""

    upload: Incoming


Key = tuple[str, str]


class UploadReceiver:
    """HQ's end: the uploads in progress of every site, by (site id, recording id)."""

    def __init__(
        self, credit: int, per_site: int, credit_interval_s: float = CREDIT_INTERVAL_S
    ) -> None:
        self.credit = credit
        self.per_site = per_site
        self.credit_interval_s = credit_interval_s
        self.uploads: dict[Key, Incoming] = {}

    def idlest(self, site_id: str) -> Key | None:
        """The upload to close before the site opens another, when it holds its limit."""
        mine = [(u.active, key) for key, u in self.uploads.items() if key[0] == site_id]
        return min(mine)[1] if len(mine) >= self.per_site else None

    def incoming_bytes(self, site_id: str) -> int:
        """The offered sizes of the site's uploads in progress (they count to its quota)."""
        return sum(u.offer.size for (site, _), u in self.uploads.items() if site == site_id)

    def open(self, site_id: str, offer: RecOffer, held: int, now: float) -> RecResume | Complete:
        """Take an offer whose file holds ``held`` bytes: where to resume, or complete."""
        upload = Incoming(offer, held, active=now, answered=now)
        if held == offer.size:
            return Complete(upload)
        self.uploads[(site_id, offer.recording_id)] = upload
        return RecResume(offer.recording_id, held, self.credit)

    def forget(self, key: Key) -> Incoming | None:
        """Stop tracking an upload (closed, failed or done); the adapter closes its file."""
        return self.uploads.pop(key, None)

    def chunk(self, site_id: str, chunk: RecChunk, now: float) -> Write | Message:
        """A chunk: write it when it is the next one, else the answer to send."""
        upload = self.uploads.get((site_id, chunk.recording_id))
        if upload is None:
            return ErrorReply("unknown-upload", "offer the recording again", chunk.recording_id)
        upload.active = now
        if chunk.offset != upload.held or upload.held + len(chunk.data) > upload.offer.size:
            return RecResume(chunk.recording_id, upload.held, self.credit)
        return Write(chunk)

    def written(self, site_id: str, chunk: RecChunk) -> RecCredit | Complete | None:
        """The chunk is in the file: complete, credit given back, or None.

        Credit goes back in batches of half the window, or with the first chunk that
        arrived ``credit_interval_s`` after the last answer (slow links).
        """
        key = (site_id, chunk.recording_id)
        upload = self.uploads[key]
        upload.held += len(chunk.data)
        if upload.held == upload.offer.size:
            del self.uploads[key]
            return Complete(upload)
        upload.owed += 1
        due = upload.active - upload.answered >= self.credit_interval_s
        if upload.owed * 2 < self.credit and not due:
            return None
        granted, upload.owed, upload.answered = upload.owed, 0, upload.active
        return RecCredit(chunk.recording_id, granted)

    def idle(self, since: float) -> list[Key]:
        """Uploads that received nothing since ``since``, to close."""
        return [key for key, u in self.uploads.items() if u.active < since]
