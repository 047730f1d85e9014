"""Kamailio's configuration and subscriber data, rendered from plain values (no I/O).

``render_config`` fills the shipped template; every value is checked before it is rendered
(``check_domain``, ``check_ipv4``; the settings use the same checks at config load) and
text inside a quoted string is escaped (``quoted``), so no value can add cfg syntax.
The control plane (evapi, the route endpoint, rtpengine's ng port, the media workers'
SIP) stays on loopback: Kamailio listens on ``sip_host`` for phones and peers and, when
that is not ``127.0.0.1``, on ``127.0.0.1`` at the same port for the media workers.
``SUBSCRIBER_SCHEMA`` and
``subscriber_rows`` make the ``credentials`` table (extension number and plain digest
password) the ``htable`` module loads into Kamailio's memory for digest auth, so no
request queries SQLite; ``UACREG_SCHEMA`` and ``uacreg_rows`` the ``uacreg`` table of trunk
registrations the ``uac`` module keeps up (``uac-create.sql``, version 5);
``LOCAL_ROUTES_SCHEMA`` and ``htable_rows`` the four tables the ``htable`` module loads
(``htable-create.sql``, version 2) with the answers Kamailio finds without asking the
appliance (``LocalRoutes``). The driver writes the file; nothing here touches the disk.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from drivers.sip.errors import ConfigValueError

MODULE_PATH = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
LOOPBACK = "127.0.0.1"
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# User-Agent substrings of SIP scanners (SIPVicious and its clones), matched ignoring case.
SCANNER_AGENTS = (
    "friendly-scanner", "sipvicious", "sipcli", "sip-scan", "iwar", "sundayddr",
    "vaxsipuseragent", "sivus", "smap", "pplsip",
)  # fmt: skip
# Dialled-number prefixes of international calls, as scanners sweep them.
SCAN_PREFIXES = ("+", "00", "011")
_AGENT = re.compile(r"^[A-Za-z0-9 ._/-]{2,40}$")
_SECRET = re.compile(r"^[0-9a-f]{32,128}$")
_PREFIX = re.compile(r"^(\+[0-9]{0,6}|[0-9]{1,6})$")


def check_domain(value: str) -> str:
    """``value`` if it is a DNS name (RFC 1123 labels) or an IPv4 address, else ValueError."""
    labels = value.split(".")
    if len(value) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"{value[:80]!r} is not a domain: dot-separated labels of letters, digits "
            "and inner hyphens (at most 63 characters each, 253 in all)"
        )
    return value


def check_ipv4(value: str) -> str:
    """``value`` if it is an IPv4 address in dotted-quad form, else ValueError."""
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{value[:80]!r} is not an IPv4 address (like 192.0.2.10)") from None
    return str(address)


def quoted(value: str) -> str:
    """``value`` escaped for a double-quoted cfg string; control characters are refused."""
    if _CONTROL.search(value):
        raise ValueError(f"{value[:80]!r} holds a control character (newline, tab, ...)")
    return value.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True)
class Subscriber:
    """One SIP account: extension number, digest password and display name."""

    number: str
    password: str
    name: str = ""


@dataclass(frozen=True)
class Registration:
    """Kamailio registers ``username@realm`` at ``registrar`` (host:port) for a trunk."""

    trunk: str
    username: str
    password: str
    realm: str
    registrar: str
    expires: int = 600


@dataclass(frozen=True)
class LocalRoutes:
    """Routing answers Kamailio reads from its own tables instead of asking the appliance.

    ``answers``: the route server's JSON answer by dialled number (htable ``local``);
    ``recording``: callers whose own recording policy comes before the answer's
    (htable ``recpol``). Both apply only to calls from an authenticated phone.
    ``trunk``: break-outs and DIDs (htable ``trunk``: ``in:<did>`` the answer for a
    call from a trunk, ``via:<trunk>`` a trunk's name, ``re:<i>``/``out:<i>`` the
    outbound routes' patterns and answers, ``ask:<number>`` numbers the chain answers);
    ``callers``: the phones whose break-outs Kamailio decides, with the rank of their
    class of service (htable ``callers``).
    """

    answers: tuple[tuple[str, str], ...] = ()
    recording: tuple[tuple[str, str], ...] = ()
    trunk: tuple[tuple[str, str], ...] = ()
    callers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class KamailioConfig:
    """Every value the rendered kamailio.cfg depends on."""

    domain: str
    sip_host: str
    sip_port: int
    evapi_port: int
    ng_port: int
    subscriber_db: str
    route_secret: str = ""
    children: int = 4
    fr_timer_ms: int = 2000
    fr_inv_timer_ms: int = 30000
    min_expires: int = 60
    max_expires: int = 3600
    pike_window_s: int = 2
    pike_requests: int = 40
    ban_seconds: int = 300
    pike_exempt: Sequence[str] = field(default_factory=tuple)
    auth_fail_limit: int = 10
    auth_fail_window_s: int = 60
    scanner_agents: Sequence[str] = SCANNER_AGENTS
    scan_prefixes: Sequence[str] = SCAN_PREFIXES
    route_port: int = 5066
    trunk_sources: Sequence[tuple[str, int]] = field(default_factory=tuple)
    anchor_media: bool = True
    record: bool = True
    max_call_seconds: int = 14400
    max_calls: int = 0
    retry_after_s: int = 30
    dispatcher_list: str = ""
    trunk_credentials: Sequence[tuple[str, str, str]] = field(default_factory=tuple)
    registrations: Sequence[Registration] = field(default_factory=tuple)
    debug: int = 1
    module_path: str = MODULE_PATH

    def __post_init__(self) -> None:
        for name, check in (("domain", check_domain), ("sip_host", check_ipv4)):
            try:
                check(getattr(self, name))
            except ValueError as err:
                raise ConfigValueError(f"kamailio {name}: {err}") from None

    @property
    def loopback_listen(self) -> bool:
        """True when the media workers' loopback socket is a second socket."""
        return self.sip_host != LOOPBACK


def render_config(config: KamailioConfig) -> str:
    """The kamailio.cfg text for ``config`` (ConfigValueError for a value it cannot hold)."""
    template = resources.files("drivers.sip").joinpath("kamailio.cfg.tmpl").read_text()
    try:
        values = _values(config)
    except ValueError as err:
        raise ConfigValueError(f"kamailio.cfg: {err}") from None
    for key, value in values.items():
        template = template.replace(f"@@{key}@@", value)
    return template


def _values(config: KamailioConfig) -> dict[str, str]:
    loopback = f"udp:{LOOPBACK}:{config.sip_port}"
    return {
        "DEBUG": str(config.debug),
        "CHILDREN": str(config.children),
        "SIP_HOST": config.sip_host,
        "SIP_PORT": str(config.sip_port),
        "DOMAIN": config.domain,
        "LOOPBACK_LISTEN": f"listen={loopback}" if config.loopback_listen else "",
        "MHOMED": "1" if config.loopback_listen else "0",
        "MODULE_PATH": quoted(config.module_path),
        "FR_TIMER_MS": str(config.fr_timer_ms),
        "FR_INV_TIMER_MS": str(config.fr_inv_timer_ms),
        "MIN_EXPIRES": str(config.min_expires),
        "MAX_EXPIRES": str(config.max_expires),
        "SUBSCRIBER_DB": quoted(config.subscriber_db),
        "ROUTE_SECRET": _route_secret(config.route_secret),
        "PIKE_WINDOW_S": str(config.pike_window_s),
        "PIKE_REQUESTS": str(config.pike_requests),
        "BAN_SECONDS": str(config.ban_seconds),
        "MAX_CALL_SECONDS": str(config.max_call_seconds),
        "MAX_CALLS_DEFINE": "#!define WITH_MAX_CALLS" if config.max_calls > 0 else "",
        "MAX_CALLS": str(int(config.max_calls)),
        "RETRY_AFTER_S": str(int(config.retry_after_s)),
        "NG_HOST": LOOPBACK,
        "NG_PORT": str(config.ng_port),
        "EVAPI_HOST": LOOPBACK,
        "EVAPI_PORT": str(config.evapi_port),
        "RECORD": "yes" if config.record else "no",
        "PIKE_EXEMPT": _pike_exempt(config.pike_exempt),
        "AUTH_FAIL_LIMIT": str(config.auth_fail_limit),
        "AUTH_FAIL_WINDOW_S": str(config.auth_fail_window_s),
        "SCANNER_AGENTS": _scanner_agents(config.scanner_agents),
        "SCAN_NUMBERS": _scan_numbers(config.scan_prefixes),
        "ROUTE_HOST": LOOPBACK,
        "ROUTE_PORT": str(config.route_port),
        "TRUNK_SOURCES": _trunk_sources(config.trunk_sources),
        "MEDIA_DEFINE": "#!define WITH_MEDIA" if config.anchor_media else "",
        "WORKERS_DEFINE": "#!define WITH_WORKERS" if config.dispatcher_list else "",
        "REGISTRATIONS_DEFINE": "#!define WITH_REGISTRATIONS" if config.registrations else "",
        "DISPATCHER_LIST": quoted(config.dispatcher_list),
        "UAC_CREDENTIALS": "\n".join(
            f'modparam("uac", "credential", "{quoted(f"{user}:{realm}:{password}")}")'
            for user, realm, password in config.trunk_credentials
        ),
    }


def _trunk_sources(sources: Sequence[tuple[str, int]]) -> str:
    lines = []
    for host, port in sources:
        address = ipaddress.ip_address(host)
        lines.append(f'\tif ($si == "{address}" && $sp == {int(port)}) {{\n'
                     "\t\t$var(from_trunk) = 1;\n\t}")  # fmt: skip
    return "\n".join(lines)


def _pike_exempt(addresses: Sequence[str]) -> str:
    if not addresses:
        return ""
    tests = " || ".join(f'$si == "{ipaddress.ip_address(a)}"' for a in addresses)
    return f"\tif ({tests}) {{\n\t\treturn;\n\t}}"


def _route_secret(secret: str) -> str:
    if not _SECRET.match(secret):
        raise ValueError("route_secret: 32 to 128 lowercase hex digits (load_route_secret)")
    return secret


def _scanner_agents(agents: Sequence[str]) -> str:
    """A test of the User-Agent against ``agents`` (Kamailio's ``=~`` ignores case)."""
    for agent in agents:
        if not _AGENT.match(agent):
            raise ValueError(f"scanner user agent {agent!r}: letters, digits, ' ._/-' only")
    if not agents:
        return "0"
    return '$ua =~ "(' + "|".join(_literal(a) for a in agents) + ')"'


def _scan_numbers(prefixes: Sequence[str]) -> str:
    """A test of the request and To users: one of ``prefixes`` and at least six more digits."""
    for prefix in prefixes:
        if not _PREFIX.match(prefix):
            raise ValueError(f"scan prefix {prefix!r}: an optional + and up to 6 digits")
    if not prefixes:
        return "0"
    pattern = "^(" + "|".join(_literal(p) for p in prefixes) + ")[0-9]{6,}$"
    return f'$rU =~ "{pattern}" || $tU =~ "{pattern}"'


def _literal(text: str) -> str:
    # Bracketed, so no backslash has to survive Kamailio's string parsing.
    return "".join(f"[{c}]" if c in ".+/" else c for c in text)


SUBSCRIBER_SCHEMA = """
DROP TABLE IF EXISTS version;
DROP TABLE IF EXISTS subscriber;
CREATE TABLE version (
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_table_name_idx UNIQUE (table_name));
INSERT INTO version VALUES ('version', 1);
"""

UACREG_SCHEMA = """
DROP TABLE IF EXISTS uacreg;
CREATE TABLE uacreg (
    id INTEGER PRIMARY KEY NOT NULL,
    l_uuid VARCHAR(64) DEFAULT '' NOT NULL,
    l_username VARCHAR(64) DEFAULT '' NOT NULL,
    l_domain VARCHAR(64) DEFAULT '' NOT NULL,
    r_username VARCHAR(64) DEFAULT '' NOT NULL,
    r_domain VARCHAR(64) DEFAULT '' NOT NULL,
    realm VARCHAR(64) DEFAULT '' NOT NULL,
    auth_username VARCHAR(64) DEFAULT '' NOT NULL,
    auth_password VARCHAR(64) DEFAULT '' NOT NULL,
    auth_ha1 VARCHAR(128) DEFAULT '' NOT NULL,
    auth_proxy VARCHAR(255) DEFAULT '' NOT NULL,
    expires INTEGER DEFAULT 0 NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL,
    reg_delay INTEGER DEFAULT 0 NOT NULL,
    contact_addr VARCHAR(255) DEFAULT '' NOT NULL,
    socket VARCHAR(128) DEFAULT '' NOT NULL,
    CONSTRAINT uacreg_l_uuid_idx UNIQUE (l_uuid));
INSERT INTO version VALUES ('uacreg', 5);
"""

# Table names below are these constants only, never a value from outside.
HTABLE_TABLES = ("local_routes", "local_recording", "trunk_routes", "trunk_callers")
CREDENTIALS_TABLE = "credentials"
_HTABLE_SCHEMA = """
DROP TABLE IF EXISTS @table;
CREATE TABLE @table (
    id INTEGER PRIMARY KEY NOT NULL,
    key_name VARCHAR(64) DEFAULT '' NOT NULL,
    key_type INTEGER DEFAULT 0 NOT NULL,
    value_type INTEGER DEFAULT 0 NOT NULL,
    key_value TEXT DEFAULT '' NOT NULL,
    expires INTEGER DEFAULT 0 NOT NULL);
INSERT INTO version VALUES ('@table', 2);
"""
LOCAL_ROUTES_SCHEMA = "".join(
    _HTABLE_SCHEMA.replace("@table", t) for t in (*HTABLE_TABLES, CREDENTIALS_TABLE)
)


def htable_insert(table: str) -> str:
    """The insert of one string value (``value_type`` 0) under a plain key into ``table``."""
    insert = "INSERT INTO @table (key_name, key_type, value_type, key_value) VALUES (?, 0, 0, ?)"
    return insert.replace("@table", table)


def htable_rows(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Rows for the local route inserts: string values (``value_type`` 0) under plain keys."""
    for key, value in pairs:
        if not key or _CONTROL.search(key + value):
            raise ConfigValueError(f"htable entry {key[:40]!r}: empty key or control character")
    return [(key, value) for key, value in pairs]


UACREG_INSERT = (
    "INSERT INTO uacreg (l_uuid, l_username, l_domain, r_username, r_domain, realm,"
    " auth_username, auth_password, auth_proxy, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def uacreg_rows(registrations: Sequence[Registration], domain: str) -> list[tuple[Any, ...]]:
    """Rows for ``UACREG_INSERT``: one outbound registration per trunk."""
    return [
        (r.trunk, r.trunk, domain, r.username, r.realm, r.realm, r.username, r.password,
         f"sip:{r.registrar}", r.expires)
        for r in registrations
    ]  # fmt: skip


def subscriber_rows(subscribers: Sequence[Subscriber]) -> list[tuple[str, str]]:
    """Rows for the ``credentials`` table: Kamailio computes HA1 from the plain password."""
    return [(sub.number, sub.password) for sub in subscribers]
