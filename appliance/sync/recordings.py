"""Recording uploads, one at a time, with credit-based flow control and resume.

Theory of operation: the ``recording`` outbox holds one entry per finished recording
(msgpack ``{recording_id, path, sha256, meta}``). The uploader offers the oldest; the
upload's protocol state (offset, credit, chunks due, HQ's verdict, the pause after a
failure) is the sans-I/O core in drivers/sync/uploads.py, and this adapter reads the
file, counts tries in the state store and quarantines. ``rec-done ok`` means the
aggregator verified the sha256: only then is the entry acknowledged and the local file
handed to retention, which deletes it when it is old or space is short.

A recording that cannot be uploaded does not block the ones queued after it. Each
failure counts a try (kept in the state store, so restarts count too): the file cannot
be opened or read, or HQ refuses the upload (``rec-done`` not ok, e.g. a checksum
mismatch). After ``recordings.upload_max_tries`` tries, and at once when the file is
missing or no longer matches the sha256 recorded when it was queued, the entry leaves
the outbox for the quarantine (state ``recording:quarantined:<id>``, with the reason),
is logged and counted (``callmesh_recordings_quarantined_total``) and shown in
``/healthz``. Offers pause for ``recordings.upload_retry_s`` after a failed try, and
after a ``quota-exceeded`` refusal, which counts no try: it is not the recording's
fault, and HQ's retention frees space.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from appliance.settings import RecordingSettings
from appliance.store import Outbox, StateStore
from drivers.sync.protocol import Message
from drivers.sync.uploads import (
    Confirmed,
    Credited,
    Mismatch,
    Refused,
    SenderEvent,
    Upload,
    UploadSender,
)

log = logging.getLogger(__name__)

QUARANTINE = "recording:quarantined:"
TRIES = "recording:tries:"


class RecordingUploader:
    """The adapter of the upload core (drivers/sync/uploads.py): files, tries, quarantine.

    ``on_quarantine`` is told the reason (an error id) of each recording quarantined.
    """

    def __init__(
        self,
        outbox: Outbox,
        state: StateStore,
        settings: RecordingSettings,
        chunk_size: int,
        on_quarantine: Callable[[str], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.state = state
        self.settings = settings
        self.core = UploadSender(chunk_size, settings.upload_retry_s)
        self.confirmed = 0
        self._on_quarantine = on_quarantine
        self._path = Path()
        self._handle: BinaryIO | None = None

    @property
    def current(self) -> Upload | None:
        """The recording being uploaded."""
        return self.core.current

    @property
    def bytes_sent(self) -> int:
        """Bytes of recordings sent since start."""
        return self.core.bytes_sent

    def reset(self) -> None:
        """Forget the session state; the next session offers again from scratch."""
        self._close()
        self.core.reset()

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def next_messages(self, now: float) -> list[Message]:
        """Messages to send now: an offer, or chunks while credit lasts."""
        upload = self.core.current
        if upload is None:
            return self._offer_next(now)
        try:
            return self._chunks(upload)
        except OSError as err:
            self._failed(upload, "file-unreadable", str(err), now)
            return []

    def has_work(self, now: float) -> bool:
        """Whether ``next_messages`` may have something to send now (else it need not run).

        While an upload waits for HQ's credit there is nothing to read, so the client
        skips the hop to a thread that ``next_messages`` takes on every turn of its loop.
        """
        if self.core.current is None:
            return self.core.may_offer(now)
        return self.core.next_chunk() is not None

    def _chunks(self, upload: Upload) -> list[Message]:
        out: list[Message] = []
        if self._handle is None:
            self._handle = self._path.open("rb")
        while (due := self.core.next_chunk()) is not None:
            self._handle.seek(due.offset)
            data = self._handle.read(due.length)
            if not data:
                raise OSError(f"{self._path} ends at {due.offset} of {upload.size} bytes")
            out.append(self.core.chunk(data))
        return out

    def stalled(self, now: float, timeout: float) -> bool:
        """True when the current upload made no progress for ``timeout`` seconds."""
        return self.core.stalled(now, timeout)

    def on_message(self, message: Message, now: float) -> list[Message]:
        """Handle a recording reply; returns messages to send (chunks, or the next offer).

        Chunks go out as soon as credit arrives, not on the client's next turn, so the
        aggregator's queue does not run dry while the client does other work.
        """
        replies: list[Message] = []
        for event in self.core.receive(message, now):
            replies += self._on_event(event, now)
        if self.core.current is None:
            self._close()
        return replies

    def _on_event(self, event: SenderEvent, now: float) -> list[Message]:
        if isinstance(event, Credited):
            return self.next_messages(now)
        self._close()
        if isinstance(event, Confirmed):
            return self._confirmed(event.upload, now)
        upload = event.upload
        log.warning(
            "recording upload refused",
            extra={"recording": upload.recording_id, "reason": event.reason},
        )
        if isinstance(event, Mismatch) and _changed(self._path, upload.sha256):
            self._quarantine(upload.seq, upload.recording_id, "sha256-changed", event.reason)
        elif isinstance(event, Mismatch | Refused):
            self._failed(upload, "refused-by-hq", event.reason, now)
        return []

    def _confirmed(self, upload: Upload, now: float) -> list[Message]:
        self.state.put(
            f"recording:confirmed:{upload.recording_id}",
            {"path": str(self._path), "confirmed_at": time.time()},
        )
        self.state.delete(TRIES + upload.recording_id)
        self.outbox.ack([upload.seq])
        self.confirmed += 1
        self.apply_retention()
        return self._offer_next(now)

    def _failed(self, upload: Upload, error_id: str, detail: str, now: float) -> None:
        """Count a try and pause; quarantine the recording when it has used up its tries."""
        self._close()
        self.core.give_up(now)
        rid = upload.recording_id
        tries = self.state.update(TRIES + rid, lambda n: n + 1, 0)
        log.warning(
            "recording upload failed",
            extra={"recording": rid, "error_id": error_id, "detail": detail, "tries": tries},
        )
        if tries >= self.settings.upload_max_tries:
            self._quarantine(upload.seq, rid, error_id, f"{detail} ({tries} tries)")

    def _quarantine(self, seq: int, recording_id: str, error_id: str, detail: str) -> None:
        """Set the recording aside so the queue moves on; a person decides what to do."""
        self._close()
        self.state.put(
            QUARANTINE + recording_id,
            {"error_id": error_id, "detail": detail, "seq": seq, "at": time.time()},
        )
        self.state.delete(TRIES + recording_id)
        self.outbox.ack([seq])
        log.error(
            "recording quarantined: it cannot be uploaded and is skipped",
            extra={"recording": recording_id, "error_id": error_id, "detail": detail},
        )
        if self._on_quarantine is not None:
            self._on_quarantine(error_id)

    def quarantined(self) -> dict[str, dict[str, Any]]:
        """Recordings set aside, by recording id."""
        return {key.removeprefix(QUARANTINE): value for key, value in self.state.items(QUARANTINE)}

    def health(self) -> tuple[bool, str]:
        """For /healthz: quarantined recordings are listed; uploads of the others go on."""
        held = self.quarantined()
        if not held:
            return True, f"{self.outbox.pending()} waiting for upload"
        shown = ", ".join(f"{rid} ({info['error_id']})" for rid, info in list(held.items())[:5])
        return True, f"{len(held)} quarantined, not uploaded: {shown}"

    def _offer_next(self, now: float) -> list[Message]:
        while self.core.may_offer(now):
            batch = self.outbox.read_batch(limit=1)
            if not batch:
                return []
            upload = self._queued(*batch[0], now)
            if upload is not None:
                return [self.core.offer(upload, now)]
        return []

    def _queued(self, seq: int, raw: bytes, now: float) -> Upload | None:
        """An outbox entry ready to offer; None when it was quarantined or failed a try."""
        entry = msgpack.unpackb(raw, raw=False)
        rid, path = str(entry.get("recording_id")), Path(entry.get("path", ""))
        if not path.is_file():
            self._quarantine(seq, rid, "file-missing", f"{path} does not exist")
            return None
        upload = Upload(seq, rid, 0, entry.get("sha256") or "", dict(entry.get("meta") or {}))
        self._path = path
        try:
            upload.size = path.stat().st_size
            upload.sha256 = upload.sha256 or _sha256(path)
        except OSError as err:
            self._failed(upload, "file-unreadable", str(err), now)
            return None
        return upload

    def apply_retention(self) -> int:
        """Delete confirmed recordings that are past retention or when space is short."""
        deleted = 0
        horizon = time.time() - self.settings.retention_days * 86400
        for key, info in list(self.state.items("recording:confirmed:")):
            path = Path(info["path"])
            if info["confirmed_at"] > horizon and not self._space_short(path):
                continue
            path.unlink(missing_ok=True)
            self.state.delete(key)
            deleted += 1
        return deleted

    def _space_short(self, path: Path) -> bool:
        try:
            free = shutil.disk_usage(path.parent).free
        except OSError:
            return False
        return free < self.settings.min_free_mb * 1024 * 1024


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _changed(path: Path, sha256: str) -> bool:
    """True when the local file no longer matches the sha256 it was queued with."""
    try:
        return _sha256(path) != sha256
    except OSError:
        return True


def upload_entry(recording_id: str, path: Path, sha256: str, meta: dict[str, Any]) -> bytes:
    """The ``recording`` outbox entry of a finished recording."""
    entry = {"recording_id": recording_id, "path": str(path), "sha256": sha256, "meta": meta}
    return bytes(msgpack.packb(entry, use_bin_type=True))


def register_recording(outbox: Outbox, recording_id: str, path: Path, meta: dict[str, Any]) -> int:
    """Queue a finished recording for upload (the file must be complete and fsync'd)."""
    with path.open("rb") as f:
        os.fsync(f.fileno())
    return outbox.append(upload_entry(recording_id, path, _sha256(path), meta))
