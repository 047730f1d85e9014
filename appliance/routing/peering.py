"""Inter-site trunk authentication: a signed header on every INVITE one site sends another.

Why a signed header and not SIP digest: digest needs a challenge round trip per call and a
subscriber row per peer site in Kamailio's table; the HMAC token is checked by the
appliance in the same route request Kamailio already makes for every INVITE, so it costs
nothing extra and all trust decisions stay in Python. The source address of the INVITE
must also be the peer site's address from the routing snapshot (trusted peers).

Headers the calling site adds (anything a phone put there is removed first)::

    X-Callmesh-Auth: v1;site=<from site>;ts=<unix seconds>;sig=<hex HMAC-SHA256>
    X-Callmesh-Caller: <the caller's extension at the calling site>
    X-Callmesh-Conversation: <conversation id shared by both sites' CDRs>
    X-Callmesh-Via: <trunk id>            (break-out through the receiving site's trunk)
    X-Callmesh-Caller-Id: <number>        (with Via: the number the caller asks to present)

``sig`` is HMAC-SHA256 with the pair's secret over ``signed_text`` (every header value,
both site ids, the Call-ID and the dialled number), so no field can be changed or
replayed into another call; ``ts`` must be within ``max_skew_s`` of the receiver's clock.

Exceptions::

    PeerError            a peer INVITE is refused; ``code``/``reason`` become the SIP reply
     ├── PeerHeaderError malformed header (400)
     └── PeerAuthError   unknown site, untrusted source, bad signature, stale token (403)
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import uuid
from dataclasses import dataclass

VERSION = "v1"
DEFAULT_SIP_PORT = 5060
_SITE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_NUMBER = re.compile(r"^\+?[0-9]{1,20}$")
_SIG = re.compile(r"^[0-9a-f]{64}$")
MAX_HEADER = 512


class PeerError(Exception):
    """A peer INVITE that is refused; ``code`` and ``reason`` are the SIP reply."""

    code = 403
    reason = "peer-refused"


class PeerHeaderError(PeerError):
    """A callmesh header is missing or malformed."""

    code = 400
    reason = "malformed-peer-header"


class PeerAuthError(PeerError):
    """The peer is not who it claims to be (or the token is stale)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def split_address(address: str) -> tuple[str, int]:
    """``host`` and port of a site's ``sip_address`` (``ip``, ``ip:port``, ``[v6]:port``)."""
    text = address.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    ipaddress.ip_address(host)
    return host, int(port) if port else DEFAULT_SIP_PORT


def sip_host(host: str, port: int) -> str:
    """``host:port`` as written in a SIP URI (IPv6 in brackets)."""
    if ipaddress.ip_address(host).version == 6:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


@dataclass(frozen=True)
class PeerCall:
    """What a calling site asserts about a call; every field is signed."""

    from_site: str
    to_site: str
    call_id: str
    caller: str
    dialled: str
    conversation: str
    via: str = ""
    caller_id: str = ""

    def signed_text(self, ts: int) -> bytes:
        fields = (VERSION, self.from_site, self.to_site, self.call_id, self.caller,
                  self.dialled, str(ts), self.conversation, self.via, self.caller_id)  # fmt: skip
        return "\n".join(fields).encode()

    def headers(self, secret: str, ts: int) -> str:
        """The header block (CRLF-terminated lines) the calling site appends."""
        sig = hmac.new(secret.encode(), self.signed_text(ts), hashlib.sha256).hexdigest()
        lines = [
            f"X-Callmesh-Auth: {VERSION};site={self.from_site};ts={ts};sig={sig}",
            f"X-Callmesh-Caller: {self.caller}",
            f"X-Callmesh-Conversation: {self.conversation}",
        ]
        if self.via:
            lines.append(f"X-Callmesh-Via: {self.via}")
        if self.caller_id:
            lines.append(f"X-Callmesh-Caller-Id: {self.caller_id}")
        return "".join(line + "\r\n" for line in lines)


@dataclass(frozen=True)
class PeerAuth:
    """A parsed ``X-Callmesh-Auth`` value."""

    site: str
    ts: int
    sig: str


def parse_auth(value: str) -> PeerAuth:
    """Parse ``v1;site=..;ts=..;sig=..`` or raise PeerHeaderError."""
    if len(value) > MAX_HEADER:
        raise PeerHeaderError("X-Callmesh-Auth is too long")
    version, *params = value.strip().split(";")
    if version != VERSION:
        raise PeerHeaderError(f"X-Callmesh-Auth: unsupported version {version[:16]!r}")
    fields = dict(p.partition("=")[::2] for p in params)
    site, ts, sig = fields.get("site", ""), fields.get("ts", ""), fields.get("sig", "")
    if not _SITE.match(site) or not ts.isdigit() or len(ts) > 12 or not _SIG.match(sig):
        raise PeerHeaderError("X-Callmesh-Auth needs site=<id>;ts=<seconds>;sig=<64 hex>")
    return PeerAuth(site, int(ts), sig)


def parse_call(
    auth: PeerAuth,
    to_site: str,
    call_id: str,
    dialled: str,
    caller: str,
    conversation: str,
    via: str = "",
    caller_id: str = "",
) -> PeerCall:
    """The asserted call from the received header values, each checked for shape."""
    if not _NUMBER.match(caller):
        raise PeerHeaderError("X-Callmesh-Caller must be the caller's extension (digits)")
    try:
        uuid.UUID(conversation)
    except ValueError:
        raise PeerHeaderError("X-Callmesh-Conversation must be a UUID") from None
    if via and not _SITE.match(via):
        raise PeerHeaderError("X-Callmesh-Via must be a trunk id")
    if caller_id and not _NUMBER.match(caller_id):
        raise PeerHeaderError("X-Callmesh-Caller-Id must be a number")
    return PeerCall(auth.site, to_site, call_id, caller, dialled, conversation, via, caller_id)


def verify(call: PeerCall, auth: PeerAuth, secret: str, now: float, max_skew_s: int) -> None:
    """Raise PeerAuthError unless ``auth`` signs ``call`` with ``secret`` and is fresh."""
    want = hmac.new(secret.encode(), call.signed_text(auth.ts), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, auth.sig):
        raise PeerAuthError("peer-auth-failed", f"bad signature from site {call.from_site}")
    if abs(now - auth.ts) > max_skew_s:
        raise PeerAuthError(
            "peer-token-stale", f"token from {call.from_site} is {now - auth.ts:.0f}s off"
        )
