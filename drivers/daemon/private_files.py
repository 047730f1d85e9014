"""Files that hold secrets (tokens, passwords, keys) are readable by their owner only.

``write_private`` creates the new file with mode 0600 from the start (never a moment
with the umask's mode), writes it beside its destination and renames it into place,
so a reader sees the old file or the whole new one. ``make_private`` narrows a file
another library created (SQLite databases, zmq key files).
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_MODE = 0o600


def write_private(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text is UTF-8), mode 0600."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def make_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is missing, else narrow its mode to 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_MODE)
    os.close(fd)
    os.chmod(path, PRIVATE_MODE)
