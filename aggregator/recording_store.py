"""Stored recordings: what a site holds, retention, and a recording's state for the API.

A recording is ``available`` while its row is in ``recordings`` and its file is on disk
(by content hash, shared by every row with that hash), ``expired`` once retention moved
its row to ``recordings_expired`` (its file is deleted when no other row needs it), and
``pending`` while a CDR names it but it has not arrived yet. All SQL of the feature lives
here; the receiver and the API routes call these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from aggregator.store.schema import recordings, recordings_expired

State = Literal["available", "expired", "pending"]


@dataclass(frozen=True)
class Found:
    """A recording as the API sees it; ``path`` is relative to the recordings folder."""

    state: State
    sha256: str = ""
    path: str = ""


def site_bytes(conn: sa.Connection, site_id: str) -> int:
    """Bytes of the recordings a site holds (files shared by hash count for each row)."""
    query = sa.select(sa.func.coalesce(sa.func.sum(recordings.c.size), 0)).where(
        recordings.c.site_id == site_id
    )
    return int(conn.scalar(query) or 0)


def stored_sha(conn: sa.Connection, site_id: str, recording_id: str) -> str | None:
    """The sha256 of a stored recording; ``"expired"`` for one retention removed."""
    key = (site_id, recording_id)
    sha: str | None = conn.scalar(sa.select(recordings.c.sha256).where(*_is(recordings, *key)))
    if sha is None and conn.scalar(sa.select(sa.literal(1)).where(*_is(recordings_expired, *key))):
        return "expired"
    return sha


def find(conn: sa.Connection, site_id: str, recording_id: str) -> Found | None:
    """A recording held or expired; None when HQ never received it."""
    key = (site_id, recording_id)
    row = conn.execute(sa.select(recordings).where(*_is(recordings, *key))).first()
    if row is not None:
        return Found("available", row.sha256, row.path)
    gone = conn.scalar(sa.select(sa.literal(1)).where(*_is(recordings_expired, *key)))
    return Found("expired") if gone else None


def states(conn: sa.Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], State]:
    """The state of each (site, recording id) a CDR names."""
    wanted = set(keys)
    found: dict[tuple[str, str], State] = dict.fromkeys(wanted, "pending")
    if not wanted:
        return found
    ids = sorted({rid for _, rid in wanted})
    for table, state in ((recordings_expired, "expired"), (recordings, "available")):
        query = sa.select(table.c.site_id, table.c.recording_id).where(
            table.c.recording_id.in_(ids)
        )
        for site_id, rid in conn.execute(query):
            if (site_id, rid) in wanted:
                found[(site_id, rid)] = state  # type: ignore[assignment]
    return found


def expire(
    conn: sa.Connection, before_ms: int, now_ms: int, limit: int = 500
) -> tuple[int, list[str]]:
    """Move up to ``limit`` recordings stored before ``before_ms`` to ``recordings_expired``.

    Returns how many moved, and the relative paths of files no remaining recording uses
    (to be deleted once this transaction committed).
    """
    # Several aggregator nodes sweep at once: each takes rows the others have not locked.
    rows = conn.execute(
        sa.select(recordings)
        .where(recordings.c.stored_ms < before_ms)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        conn.execute(sa.delete(recordings).where(*_is(recordings, row.site_id, row.recording_id)))
        conn.execute(sa.insert(recordings_expired).values(_expired_row(row, now_ms)))
    hashes = {row.sha256: row.path for row in rows}
    still = conn.scalars(
        sa.select(recordings.c.sha256).where(recordings.c.sha256.in_(sorted(hashes)))
    ).all()
    return len(rows), [path for sha, path in hashes.items() if sha not in set(still)]


def annotate(conn: sa.Connection, page: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``recording`` (state and download path) to each CDR of a page."""
    keys = [(c["site_id"], c["recording_id"]) for c in page if c.get("recording_id")]
    found = states(conn, keys)
    for cdr in page:
        rid = cdr.get("recording_id")
        state = found.get((cdr["site_id"], rid)) if rid else None
        cdr["recording"] = None if state is None else _link(cdr["site_id"], str(rid), state)
    return page


def remove_files(root: Path, paths: Iterable[str]) -> int:
    """Delete expired recordings' files; returns how many were there."""
    removed = 0
    for rel in paths:
        try:
            (root / rel).unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed


def _link(site_id: str, recording_id: str, state: State) -> dict[str, Any]:
    url = f"/api/v1/recordings/{site_id}/{recording_id}" if state == "available" else None
    return {"state": state, "url": url}


def _expired_row(row: Any, now_ms: int) -> dict[str, Any]:
    return {
        "site_id": row.site_id,
        "recording_id": row.recording_id,
        "cdr_id": row.cdr_id,
        "size": row.size,
        "stored_ms": row.stored_ms,
        "expired_ms": now_ms,
    }


def _is(table: sa.Table, site_id: str, recording_id: str) -> list[sa.ColumnElement[bool]]:
    return [table.c.site_id == site_id, table.c.recording_id == recording_id]
