"""One-time enrolment codes and the site keys enrolled with them, in HQ's database.

A code reads ``SITE_ID.SECRET``: the site id tells the box who it is and HQ which code
to check; the secret is 32 random bytes (base32). Only the SHA-256 of the whole code is
stored, compared in constant time. A code is single use, expires, and is void after
``max_failures`` wrong secrets for its site. Enrolling again with a used code and the key
it enrolled succeeds again (a box that lost HQ's answer retries safely).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from aggregator.store.schema import enrolment_codes, site_keys

SITE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class EnrolmentRefused(Exception):
    """A code or key HQ will not enrol; ``error_id`` says why."""

    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message


@dataclass(frozen=True)
class NewCode:
    """A code as created: shown once, then only its hash remains."""

    site_id: str
    code: str
    expires_ms: int


@dataclass(frozen=True)
class EnrolledKey:
    """A site key from the database."""

    site_id: str
    public_key: str
    revoked: bool


def now_ms() -> int:
    return int(time.time() * 1000)


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def split_code(code: str) -> tuple[str, str]:
    """The site id and secret of a code; raises EnrolmentRefused when malformed."""
    site_id, dot, secret = code.strip().rpartition(".")
    if not dot or not site_id or len(secret) < 32 or len(code) > 200:
        raise EnrolmentRefused("code-malformed", "an enrolment code reads SITE_ID.SECRET")
    return site_id, secret


def create_code(conn: sa.Connection, site_id: str, ttl_s: float) -> NewCode:
    """A new code for ``site_id``; any earlier unused code of the site stops working."""
    secret = base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=").lower()
    code = f"{site_id}.{secret}"
    created = now_ms()
    expires = created + int(ttl_s * 1000)
    row = {
        "code_hash": code_hash(code),
        "created_ms": created,
        "expires_ms": expires,
        "used_ms": None,
        "failures": 0,
    }
    updated = conn.execute(
        enrolment_codes.update().where(enrolment_codes.c.site_id == site_id).values(**row)
    )
    if updated.rowcount == 0:
        conn.execute(enrolment_codes.insert().values(site_id=site_id, **row))
    return NewCode(site_id, code, expires)


def enrol(conn: sa.Connection, code: str, public_key: str, max_failures: int) -> str:
    """Bind ``public_key`` to the code's site and use the code up; the site id.

    Raises EnrolmentRefused (code-malformed, code-unknown, code-wrong, code-void,
    code-expired, code-used, key-taken). A wrong secret counts against the site's code;
    the caller commits either way so the count sticks.
    """
    site_id, _ = split_code(code)
    row = conn.execute(
        sa.select(enrolment_codes).where(enrolment_codes.c.site_id == site_id)
    ).first()
    if row is None:
        raise EnrolmentRefused("code-unknown", "no enrolment code exists for this site")
    if row.failures >= max_failures:
        raise EnrolmentRefused("code-void", "too many wrong codes; ask HQ for a new one")
    if not hmac.compare_digest(code_hash(code), row.code_hash):
        conn.execute(
            enrolment_codes.update()
            .where(enrolment_codes.c.site_id == site_id)
            .values(failures=enrolment_codes.c.failures + 1)
        )
        raise EnrolmentRefused("code-wrong", "the enrolment code is wrong")
    if row.used_ms is not None:
        if _enrolled_with(conn, site_id, public_key, row.used_ms):
            return site_id
        raise EnrolmentRefused("code-used", "the enrolment code was already used")
    if now_ms() >= row.expires_ms:
        raise EnrolmentRefused("code-expired", "the enrolment code has expired")
    _check_key_free(conn, site_id, public_key)
    at = _enrolment_time(conn, site_id)
    used = conn.execute(
        enrolment_codes.update()
        .where(enrolment_codes.c.site_id == site_id, enrolment_codes.c.used_ms.is_(None))
        .values(used_ms=at)
    )
    if used.rowcount != 1:
        raise EnrolmentRefused("code-used", "the enrolment code was already used")
    conn.execute(site_keys.delete().where(site_keys.c.site_id == site_id))
    conn.execute(
        site_keys.insert().values(
            site_id=site_id, public_key=public_key, enrolled_ms=at, revoked_ms=None
        )
    )
    return site_id


def _enrolled_with(conn: sa.Connection, site_id: str, public_key: str, used_ms: int) -> bool:
    """True when the code's use bound this very key, still unrevoked."""
    row = conn.execute(sa.select(site_keys).where(site_keys.c.site_id == site_id)).first()
    return (
        row is not None
        and row.revoked_ms is None
        and row.enrolled_ms == used_ms
        and hmac.compare_digest(row.public_key, public_key)
    )


def _enrolment_time(conn: sa.Connection, site_id: str) -> int:
    """Now, but after the site's earlier enrolment: a re-key always changes the time."""
    earlier = conn.scalar(sa.select(site_keys.c.enrolled_ms).where(site_keys.c.site_id == site_id))
    return max(now_ms(), (earlier or 0) + 1)


def _check_key_free(conn: sa.Connection, site_id: str, public_key: str) -> None:
    taken = conn.execute(
        sa.select(site_keys.c.site_id).where(
            site_keys.c.public_key == public_key, site_keys.c.site_id != site_id
        )
    ).first()
    if taken is not None:
        raise EnrolmentRefused("key-taken", "this public key belongs to another site")


def revoke(conn: sa.Connection, site_id: str) -> bool:
    """Revoke the site's enrolled key; False when it has none in force."""
    done = conn.execute(
        site_keys.update()
        .where(site_keys.c.site_id == site_id, site_keys.c.revoked_ms.is_(None))
        .values(revoked_ms=now_ms())
    )
    return done.rowcount == 1


def enrolled_keys(conn: sa.Connection) -> list[EnrolledKey]:
    """Every enrolled key, revoked ones included."""
    rows = conn.execute(
        sa.select(site_keys.c.site_id, site_keys.c.public_key, site_keys.c.revoked_ms)
    )
    return [EnrolledKey(r.site_id, r.public_key, r.revoked_ms is not None) for r in rows]


class EnrolledKeyReader:
    """ZAP's refresh: every enrolled key, or None while the table has not changed.

    A change is noticed by the row count and the sums of the enrolment and revocation
    times: an enrolment adds a row, a re-key raises its site's enrolment time (always
    later than the one it replaces), a revocation sets a time where there was none. So a
    refresh of an unchanged table reads one row, not every key.
    """

    def __init__(self, engine: Callable[[], sa.Engine]) -> None:
        self._engine = engine
        self._seen: tuple[object, ...] | None = None

    def __call__(self) -> list[EnrolledKey] | None:
        with self._engine().connect() as conn:
            version = tuple(conn.execute(_VERSION).one())
            if version == self._seen:
                return None
            found = enrolled_keys(conn)
        self._seen = version
        return found


_VERSION = sa.select(
    sa.func.count(),
    sa.func.coalesce(sa.func.sum(site_keys.c.enrolled_ms), 0),
    sa.func.coalesce(sa.func.sum(site_keys.c.revoked_ms), 0),
)
