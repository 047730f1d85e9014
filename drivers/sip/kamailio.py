"""Kamailio as a supervised child process: files rendered into a run directory, probed by OPTIONS.

Reload rule: a changed subscriber list (the ``credentials`` table) and changed local
routes are written into the SQLite file Kamailio loaded at start, and the caller has
Kamailio reload them (RPC ``htable.reload``, ``RELOAD_RPCS``); a changed kamailio.cfg
restarts the daemon.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from drivers.daemon.private_files import make_private, write_private
from drivers.sip.errors import ProcessError
from drivers.sip.kamailio_config import (
    CREDENTIALS_TABLE,
    HTABLE_TABLES,
    LOCAL_ROUTES_SCHEMA,
    SUBSCRIBER_SCHEMA,
    UACREG_INSERT,
    UACREG_SCHEMA,
    KamailioConfig,
    LocalRoutes,
    Subscriber,
    htable_insert,
    htable_rows,
    render_config,
    subscriber_rows,
    uacreg_rows,
)
from drivers.sip.probe import sip_options_ok
from drivers.sip.supervisor import Daemon


def find_module_path() -> str:
    """Kamailio's module directory for this architecture."""
    found = sorted(glob.glob("/usr/lib/*/kamailio/modules/"))
    if not found:
        raise ProcessError(
            "Kamailio modules not found: install the Debian packages kamailio "
            "kamailio-sqlite-modules kamailio-extra-modules"
        )
    return found[0]


ROUTE_SECRET_FILE = "route-secret"
# The RPCs that make a running Kamailio read changed credentials and local routes from
# its SQLite file.
RELOAD_RPCS = tuple(("htable.reload", t) for t in ("creds", "local", "recpol", "trunk", "callers"))


def load_route_secret(run_dir: Path) -> str:
    """The key of this edge's Record-Route tokens: made once, then kept in ``run_dir``.

    Kept across restarts of Kamailio and of the appliance, so a dialog set up before one
    can still be ended after it (kamailio.cfg.tmpl, route[RECORD_ROUTED]).
    """
    path = run_dir / ROUTE_SECRET_FILE
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip()


class KamailioDriver:
    """Renders Kamailio's files and runs it under a Daemon supervisor."""

    name = "kamailio"

    def __init__(
        self,
        run_dir: Path,
        config: KamailioConfig,
        subscribers: Sequence[Subscriber],
        binary: str = "kamailio",
    ) -> None:
        self.run_dir = run_dir
        self.config = config
        self._subscribers = tuple(subscribers)
        self.local_routes = LocalRoutes()
        self._binary = binary
        self.cfg_path = run_dir / "kamailio.cfg"
        self.daemon = Daemon(
            "kamailio",
            self._argv,
            run_dir / "kamailio.log",
            self._ready,
            run_dir / "kamailio.pid",
        )

    def _argv(self) -> list[str]:
        binary = shutil.which(self._binary)
        if binary is None:
            raise ProcessError(
                f"{self._binary} not found: install the Debian package kamailio "
                "(./run test installs it)"
            )
        # TLSF for shared and private memory: Debian's default (qm, built with DBG_SR_MEMORY)
        # searches its free lists on every allocation and was the script's largest cost.
        return [
            binary, "-DD", "-E", "-f", str(self.cfg_path), "-P", str(self.run_dir / "kamailio.pid"),
            "-Y", str(self.run_dir), "-m", "64", "-M", "8", "-x", "tlsf",
        ]  # fmt: skip

    async def _ready(self) -> bool:
        return await sip_options_ok(self.config.sip_host, self.config.sip_port)

    def write_files(self) -> bool:
        """Write kamailio.cfg and the subscriber DB; returns whether the cfg text changed."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_subscribers(
            Path(self.config.subscriber_db), self._subscribers, self.config, self.local_routes
        )
        text = render_config(self.config)
        old = self.cfg_path.read_text() if self.cfg_path.exists() else None
        if old == text:
            make_private(self.cfg_path)
            return False
        write_private(self.cfg_path, text)
        return True

    async def start(self) -> None:
        """Write files and start Kamailio (ready when it answers OPTIONS)."""
        self.write_files()
        await self.daemon.start()

    async def stop(self) -> None:
        """Terminate Kamailio."""
        await self.daemon.stop()

    async def apply(self, config: KamailioConfig, subscribers: Sequence[Subscriber]) -> bool:
        """Apply new settings; restarts Kamailio only when its cfg changed."""
        self.config = config
        self._subscribers = tuple(subscribers)
        if self.write_files():
            await self.daemon.restart()
            return True
        return False


def write_subscribers(
    path: Path,
    subscribers: Sequence[Subscriber],
    config: KamailioConfig,
    local_routes: LocalRoutes | None = None,
) -> None:
    """Replace the credentials, trunk registration and routing tables in one transaction."""
    routes = local_routes or LocalRoutes()
    path.parent.mkdir(parents=True, exist_ok=True)
    make_private(path)
    conn = sqlite3.connect(path, timeout=5, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for statement in (SUBSCRIBER_SCHEMA + UACREG_SCHEMA + LOCAL_ROUTES_SCHEMA).split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany(htable_insert(CREDENTIALS_TABLE), subscriber_rows(subscribers))
        conn.executemany(UACREG_INSERT, uacreg_rows(config.registrations, config.domain))
        tables = (routes.answers, routes.recording, routes.trunk, routes.callers)
        for table, rows in zip(HTABLE_TABLES, tables, strict=True):
            conn.executemany(htable_insert(table), htable_rows(rows))
        conn.execute("COMMIT")
    finally:
        conn.close()
