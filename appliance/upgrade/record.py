"""Every upgrade attempt, kept in ``upgrades.json`` in the data directory.

The file is written by ``callmesh upgrade`` (root) and read by the appliance (its own
user) for the sync ``status``, so it belongs to the data directory's owner. It is
replaced atomically through a new file in the same directory, never written through a
path the service user could have pointed elsewhere. What is read back is checked entry
by entry: a damaged file loses its damaged entries, not the upgrade.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE_NAME = "upgrades.json"
KEEP = 50
MAX_BYTES = 256 * 1024  # KEEP attempts take a few kB; anything larger is not ours


@dataclass(frozen=True)
class UpgradeAttempt:
    """One run of ``callmesh upgrade``: from which version to which, and how it ended."""

    from_version: str
    to_version: str
    result: str  # upgraded, refused, rolled-back, rollback-failed, failed
    error_id: str
    detail: str
    started: str  # ISO 8601, UTC
    finished: str

    @classmethod
    def parse(cls, raw: object) -> UpgradeAttempt | None:
        """An attempt from JSON, or None when it is not one."""
        names = [f.name for f in fields(cls)]
        if not isinstance(raw, dict) or not all(isinstance(raw.get(n), str) for n in names):
            return None
        return cls(**{n: raw[n][:500] for n in names})


class UpgradeLog:
    """``upgrades.json``: the attempts, oldest first, the last ``KEEP`` of them."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME

    def attempts(self) -> list[UpgradeAttempt]:
        """The attempts recorded so far (none when the file is missing or unreadable)."""
        try:
            with self.path.open("rb") as file:
                raw = json.loads(file.read(MAX_BYTES + 1)[:MAX_BYTES])
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as err:
            log.warning("upgrade log unreadable", extra={"path": str(self.path), "error": str(err)})
            return []
        entries = raw.get("attempts") if isinstance(raw, dict) else None
        parsed = (UpgradeAttempt.parse(e) for e in entries or [])
        return [attempt for attempt in parsed if attempt is not None]

    def last(self) -> UpgradeAttempt | None:
        """The latest attempt."""
        attempts = self.attempts()
        return attempts[-1] if attempts else None

    def append(self, attempt: UpgradeAttempt) -> None:
        """Add ``attempt``, replacing the file atomically."""
        kept = [*self.attempts(), attempt][-KEEP:]
        text = json.dumps({"attempts": [asdict(a) for a in kept]}, indent=1)
        owner = self.path.parent.stat()
        part = self.path.with_name(f".{FILE_NAME}.{secrets.token_hex(8)}")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        try:
            os.fchown(fd, owner.st_uid, owner.st_gid)
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(part, self.path)


class UpgradeStatus:
    """The sync ``status`` part: the last upgrade attempt, read again when the file changes.

    The record of an upgrade is written after the restarted service passed its health
    check, so the service cannot read it once at start. The file is replaced, never
    rewritten in place: a new inode or modification time means new content.
    """

    def __init__(self, data_dir: Path) -> None:
        self._log = UpgradeLog(data_dir)
        self._seen: tuple[int, int] | None = None
        self._part: dict[str, Any] = {}

    def __call__(self) -> dict[str, Any]:
        try:
            found = self._log.path.stat()
            changed = (found.st_ino, found.st_mtime_ns)
        except OSError:
            return {}
        if changed != self._seen:
            self._seen = changed
            last = self._log.last()
            self._part = {} if last is None else {"upgrade": asdict(last)}
        return self._part
