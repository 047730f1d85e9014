"""HQ API for enrolment: admins create codes and revoke keys; boxes enrol with a code.

``POST /api/v1/enrol`` is the one route without a token: the code is the credential.
It is rate limited per client address and every refusal is logged with its error_id.
"""

import logging
from collections.abc import Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field, field_validator

from aggregator.api.auth import Principal, hq_access
from aggregator.api.errors import ApiError
from aggregator.enrolment import codes
from aggregator.enrolment.limiter import AddressLimiter
from aggregator.settings import AggregatorSettings
from drivers.sync import keys

log = logging.getLogger(__name__)

REFUSAL_STATUS = {"key-taken": 409}


class CodeRequest(BaseModel):
    """Options of a new code."""

    ttl_s: float | None = Field(
        None, gt=0, le=30 * 86400, description="default enrolment.code_ttl_h"
    )


class EnrolRequest(BaseModel):
    """What a box presents: the code and its own CurveZMQ public key (z85)."""

    code: str = Field(min_length=1, max_length=200)
    public_key: str

    @field_validator("public_key")
    @classmethod
    def _z85(cls, value: str) -> str:
        keys.check_z85_key(value)
        return value


def build_enrolment_router(
    settings: AggregatorSettings, engine: Callable[[], sa.Engine]
) -> APIRouter:
    """/sites/{site_id}/enrolment, /sites/{site_id}/key and /enrol."""
    router = APIRouter(prefix="/api/v1")
    admin = Annotated[Principal, hq_access(settings.api.tokens).needs("admin")]
    limiter = AddressLimiter(settings.enrolment.attempts_per_minute)

    @router.post(
        "/sites/{site_id}/enrolment",
        tags=["enrolment"],
        summary="Create a one-time enrolment code for a site (shown only in this answer)",
    )
    def create_code(
        site_id: Annotated[str, PathParam(pattern=codes.SITE_ID_PATTERN)],
        principal: admin,
        options: CodeRequest | None = None,
    ) -> dict[str, Any]:
        ttl_s = (options.ttl_s if options else None) or settings.enrolment.code_ttl_h * 3600
        with engine().begin() as conn:
            new = codes.create_code(conn, site_id, ttl_s)
        log.info("enrolment code created", extra={"site": site_id, "by": principal.name})
        return {"site_id": new.site_id, "code": new.code, "expires_ms": new.expires_ms}

    @router.delete(
        "/sites/{site_id}/key",
        tags=["enrolment"],
        summary="Revoke a site's enrolled key: its connections are cut, its key refused",
    )
    def revoke_key(site_id: str, principal: admin) -> dict[str, Any]:
        with engine().begin() as conn:
            revoked = codes.revoke(conn, site_id)
        if not revoked:
            raise ApiError(
                404,
                "no-enrolled-key",
                f"site {site_id!r} has no enrolled key in force (keys in HQ's YAML are "
                "revoked there)",
            )
        log.warning("site key revoked", extra={"site": site_id, "by": principal.name})
        return {"site_id": site_id, "revoked": True}

    @router.post(
        "/enrol",
        tags=["enrolment"],
        summary="A box enrols: code and its public key in; HQ's key and endpoints out",
    )
    def enrol(request: EnrolRequest, http: Request) -> dict[str, Any]:
        address = http.client.host if http.client else "unknown"
        if not limiter.allow(address):
            _refused(address, "enrol-rate-limited")
            raise ApiError(429, "enrol-rate-limited", "too many enrol attempts; wait a minute")
        with engine().connect() as conn:
            try:
                site_id = codes.enrol(
                    conn, request.code, request.public_key, settings.enrolment.max_failures
                )
            except codes.EnrolmentRefused as err:
                conn.commit()
                _refused(address, err.error_id)
                raise ApiError(
                    REFUSAL_STATUS.get(err.error_id, 403), err.error_id, err.message
                ) from None
            conn.commit()
        log.info("site enrolled", extra={"site": site_id, "client": address})
        return {
            "site_id": site_id,
            "server_public_key": _server_key(settings),
            "endpoints": list(settings.enrol_endpoints()),
        }

    return router


def _server_key(settings: AggregatorSettings) -> str:
    try:
        return keys.load_public(settings.key_file()).decode()
    except keys.KeyFileError as err:
        log.error("no server key to give", extra={"error_id": "server-key-missing"})
        raise ApiError(503, "server-key-missing", f"HQ has no ingest key yet: {err}") from None


def _refused(address: str, error_id: str) -> None:
    log.warning("enrolment refused", extra={"error_id": error_id, "client": address})
