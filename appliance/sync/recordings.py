"""Recording uploads, one at a time, with credit-based flow control and resume.

Theory of operation: the ``recording`` outbox holds one entry per finished recording
(msgpack ``{recording_id, path, meta}``). The uploader offers the oldest; the
aggregator answers with the offset it already holds and a credit of chunks; chunks go
out while credit lasts and each stored chunk returns one credit. ``rec-done ok`` means
the aggregator verified the sha256: only then is the entry acknowledged and the local
file handed to retention, which deletes it when it is old or space is short.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
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
    """Drives one upload at a time over the session's send function."""

    def __init__(
        self, outbox: Outbox, state: StateStore, settings: RecordingSettings, chunk_size: int
    ) -> None:
        self.outbox = outbox
        self.state = state
        self.settings = settings
        self.chunk_size = chunk_size
        self.current: Upload | None = None
        self.bytes_sent = 0
        self.confirmed = 0

    def reset(self) -> None:
        """Forget the session state; the next session offers again from scratch."""
        self._drop()

    def _drop(self) -> None:
        if self.current is not None:
            self.current.close()
        self.current = None

    def next_messages(self, now: float) -> list[Message]:
        """Messages to send now: an offer, or chunks while credit lasts."""
        if self.current is None:
            return self._offer_next(now)
        upload = self.current
        out: list[Message] = []
        if upload.handle is None:
            upload.handle = upload.path.open("rb")
        while upload.offset >= 0 and upload.credit > 0 and upload.offset < upload.size:
            upload.handle.seek(upload.offset)
            data = upload.handle.read(self.chunk_size)
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
            log.warning(
                "recording upload refused, starting over",
                extra={"recording": upload.recording_id, "reason": done.reason},
            )
            return []
        self.state.put(
            f"recording:confirmed:{upload.recording_id}",
            {"path": str(upload.path), "confirmed_at": time.time()},
        )
        self.outbox.ack([upload.seq])
        self.confirmed += 1
        self.apply_retention()
        return self._offer_next(now)

    def _offer_next(self, now: float) -> list[Message]:
        batch = self.outbox.read_batch(limit=1)
        if not batch:
            return []
        seq, raw = batch[0]
        entry = msgpack.unpackb(raw, raw=False)
        path = Path(entry["path"])
        if not path.is_file():
            log.error(
                "recording file is missing; it cannot be uploaded",
                extra={"recording": entry.get("recording_id"), "path": str(path)},
            )
            self.state.put(f"recording:missing:{entry.get('recording_id')}", entry)
            self.outbox.ack([seq])
            return self._offer_next(now)
        sha = entry.get("sha256") or _sha256(path)
        upload = Upload(
            seq,
            entry["recording_id"],
            path,
            path.stat().st_size,
            sha,
            dict(entry.get("meta") or {}),
            last_progress=now,
        )
        self.current = upload
        return [RecOffer(upload.recording_id, upload.size, upload.sha256, upload.meta)]

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


def register_recording(outbox: Outbox, recording_id: str, path: Path, meta: dict[str, Any]) -> int:
    """Queue a finished recording for upload (the file must be complete and fsync'd)."""
    with path.open("rb") as f:
        os.fsync(f.fileno())
    entry = {"recording_id": recording_id, "path": str(path), "sha256": _sha256(path), "meta": meta}
    return outbox.append(msgpack.packb(entry, use_bin_type=True))
