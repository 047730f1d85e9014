"""Recording uploads, one at a time, with credit-based flow control and resume.

Theory of operation: the ``recording`` outbox holds one entry per finished recording
(msgpack ``{recording_id, path, meta}``). The uploader offers the oldest; the
aggregator answers with the offset it already holds and a credit of chunks; chunks go
out while credit lasts and each stored chunk returns one credit. ``rec-done ok`` means
the aggregator verified the sha256: only then is the entry acknowledged and the local
file handed to retention, which deletes it when it is old or space is short.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from appliance.settings import RecordingSettings
from appliance.store import Outbox, StateStore
from drivers.sync.protocol import (
    ErrorReply,
    Message,
    RecChunk,
    RecCredit,
    RecDone,
    RecOffer,
    RecResume,
)

log = logging.getLogger(__name__)

QUARANTINE = "recording:quarantined:"
TRIES = "recording:tries:"


@dataclass
class Upload:
    """The recording being uploaded."""

    seq: int
    recording_id: str
    path: Path
    size: int
    sha256: str
    meta: dict[str, Any]
    offset: int = -1
    credit: int = 0
    last_progress: float = 0.0
    handle: BinaryIO | None = None

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class RecordingUploader:
    """Drives one upload at a time over the session's send function.

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
        self.chunk_size = chunk_size
        self.current: Upload | None = None
        self.bytes_sent = 0
        self.confirmed = 0
        self._on_quarantine = on_quarantine
        self._hold_until = 0.0

    def reset(self) -> None:
        """Forget the session state; the next session offers again from scratch."""
        self._drop()
        self._hold_until = 0.0

    def _drop(self) -> None:
        if self.current is not None:
            self.current.close()
        self.current = None

    def next_messages(self, now: float) -> list[Message]:
        """Messages to send now: an offer, or chunks while credit lasts."""
        if self.current is None:
            return self._offer_next(now)
        try:
            return self._chunks(self.current)
        except OSError as err:
            self._failed(self.current, "file-unreadable", str(err), now)
            return []

    def _chunks(self, upload: Upload) -> list[Message]:
        out: list[Message] = []
        if upload.handle is None:
            upload.handle = upload.path.open("rb")
        while upload.offset >= 0 and upload.credit > 0 and upload.offset < upload.size:
            upload.handle.seek(upload.offset)
            data = upload.handle.read(self.chunk_size)
            if not data:
                raise OSError(f"{upload.path} ends at {upload.offset} of {upload.size} bytes")
            out.append(RecChunk(upload.recording_id, upload.offset, data))
            upload.offset += len(data)
            upload.credit -= 1
            self.bytes_sent += len(data)
        return out

    def stalled(self, now: float, timeout: float) -> bool:
        """True when the current upload made no progress for ``timeout`` seconds."""
        return self.current is not None and now - self.current.last_progress > timeout

    def on_message(self, message: Message, now: float) -> list[Message]:
        """Handle a recording reply; returns messages to send (chunks, or the next offer).

        Chunks go out as soon as credit arrives, not on the client's next turn, so the
        aggregator's queue does not run dry while the client does other work.
        """
        upload = self.current
        if (
            upload is None
            or getattr(message, "recording_id", getattr(message, "ref", None))
            != upload.recording_id
        ):
            return []
        upload.last_progress = now
        if isinstance(message, RecResume):
            upload.offset, upload.credit = message.offset, message.credit
            return self.next_messages(now)
        if isinstance(message, RecCredit):
            upload.credit += message.credit
            return self.next_messages(now)
        if isinstance(message, RecDone):
            return self._done(upload, message, now)
        if isinstance(message, ErrorReply):
            self._drop()
        return []

    def _done(self, upload: Upload, done: RecDone, now: float) -> list[Message]:
        self._drop()
        if not done.ok:
            self._refused(upload, done.reason, now)
            return []
        self.state.put(
            f"recording:confirmed:{upload.recording_id}",
            {"path": str(upload.path), "confirmed_at": time.time()},
        )
        self.state.delete(TRIES + upload.recording_id)
        self.outbox.ack([upload.seq])
        self.confirmed += 1
        self.apply_retention()
        return self._offer_next(now)

    def _refused(self, upload: Upload, reason: str, now: float) -> None:
        error_id = reason.split(":")[0]
        log.warning(
            "recording upload refused",
            extra={"recording": upload.recording_id, "reason": reason},
        )
        if error_id == "quota-exceeded":
            self._hold_until = now + self.settings.upload_retry_s
        elif error_id == "sha256-mismatch" and _changed(upload):
            self._quarantine(upload.seq, upload.recording_id, "sha256-changed", reason)
        else:
            self._failed(upload, "refused-by-hq", reason, now)

    def _failed(self, upload: Upload, error_id: str, detail: str, now: float) -> None:
        """Count a try and pause; quarantine the recording when it has used up its tries."""
        self._drop()
        self._hold_until = now + self.settings.upload_retry_s
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
        self._drop()
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
        while now >= self._hold_until:
            batch = self.outbox.read_batch(limit=1)
            if not batch:
                return []
            offer = self._offer(*batch[0], now)
            if offer is not None:
                return [offer]
        return []

    def _offer(self, seq: int, raw: bytes, now: float) -> RecOffer | None:
        """Start uploading an outbox entry; None when it was quarantined or failed a try."""
        entry = msgpack.unpackb(raw, raw=False)
        rid, path = str(entry.get("recording_id")), Path(entry.get("path", ""))
        if not path.is_file():
            self._quarantine(seq, rid, "file-missing", f"{path} does not exist")
            return None
        upload = Upload(seq, rid, path, 0, entry.get("sha256") or "", dict(entry.get("meta") or {}))
        try:
            upload.size = path.stat().st_size
            upload.sha256 = upload.sha256 or _sha256(path)
        except OSError as err:
            self._failed(upload, "file-unreadable", str(err), now)
            return None
        upload.last_progress = now
        self.current = upload
        return RecOffer(upload.recording_id, upload.size, upload.sha256, upload.meta)

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


def _changed(upload: Upload) -> bool:
    """True when the local file no longer matches the sha256 it was queued with."""
    try:
        return _sha256(upload.path) != upload.sha256
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
