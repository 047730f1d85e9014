"""HQ API for recordings (/api/v1/recordings): download a stored WAV with its checksum.

The receiver is ``aggregator/recordings.py``, the SQL ``aggregator/recording_store.py``.
"""

from collections.abc import Callable
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import FileResponse

from aggregator import recording_store
from aggregator.api.auth import Principal, hq_access
from aggregator.api.errors import ApiError
from aggregator.settings import AggregatorSettings


def build_recordings_router(
    settings: AggregatorSettings, engine: Callable[[], sa.Engine]
) -> APIRouter:
    """/recordings/{site_id}/{recording_id}."""
    router = APIRouter(prefix="/api/v1")
    who = Annotated[Principal, hq_access(settings.api.tokens).needs("viewer")]

    @router.get(
        "/recordings/{site_id}/{recording_id}",
        tags=["recordings"],
        summary="Download a recording (WAV)",
    )
    def download(site_id: str, recording_id: str, principal: who) -> FileResponse:
        principal.scope(site_id)
        with engine().connect() as conn:
            found = recording_store.find(conn, site_id, recording_id)
        if found is None:
            raise ApiError(404, "unknown-recording", f"no recording {recording_id!r} at {site_id}")
        if found.state == "expired":
            raise ApiError(410, "recording-expired", "deleted by HQ's recording retention")
        path = settings.recordings_dir() / found.path
        if not path.is_file():
            raise ApiError(410, "recording-file-gone", "the recording's file is no longer on disk")
        return FileResponse(
            path,
            media_type="audio/wav",
            filename=f"{recording_id}.wav",
            headers={"X-Content-SHA256": found.sha256},
        )

    return router
