"""The routing table in force on this appliance, kept across restarts.

Theory of operation: HQ sends a full ``snapshot`` or an ``update`` (changes against a
base version). Either is turned into a complete new table and built — which validates
it — before anything is stored; only a table that built is written to the state store
(one LMDB transaction) and then swapped in with a single assignment, so the PBX always
sees one whole table, old or new. A refused snapshot leaves the table in force untouched
and the refusal is reported to HQ. At start the last stored table is loaded, so the
box routes while HQ is unreachable.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.routing.table import RouteDecision, RoutingTable, RoutingTableError
from appliance.store import StateStore, Store
from drivers.sync import routing_changes as changes
from drivers.sync.records import RecordError, parse_routing_table

log = logging.getLogger(__name__)

TOPIC = "routing"
STATE_KEY = f"snapshot:{TOPIC}"


@dataclass(frozen=True)
class ApplyResult:
    """What became of a snapshot or update: applied, ignored as stale, or refused."""

    outcome: str
    version: int
    running: int
    reason: str = ""

    @property
    def refused(self) -> bool:
        return self.outcome == "refused"


class RoutingService:
    """Owns the appliance's routing table (a lifecycle component); the PBX calls ``lookup``."""

    name = "routing"

    def __init__(self, store: Callable[[], Store]) -> None:
        self._store = store
        self._state: StateStore | None = None
        self._data: dict[str, Any] = {}
        self.table: RoutingTable | None = None
        self.refused: str = ""

    async def start(self) -> None:
        """Load the last stored table (the store must be open)."""
        if self._state is None:
            self._state = StateStore(self._store())
            self.load()

    async def stop(self) -> None:
        """Nothing to release: every applied table is already stored."""

    @property
    def version(self) -> int:
        """The version in force (0: no table yet)."""
        return self.table.version if self.table is not None else 0

    def load(self) -> None:
        """Load the stored table; a stored table that no longer builds is logged and skipped."""
        assert self._state is not None
        stored = self._state.get(STATE_KEY)
        if not isinstance(stored, dict) or not stored.get("data"):
            return
        try:
            self.table = RoutingTable(int(stored["version"]), stored["data"])
        except (RoutingTableError, KeyError, TypeError, ValueError) as err:
            log.error("stored routing table is unusable; waiting for HQ", extra={"error": str(err)})
            return
        self._data = stored["data"]
        log.info("routing table loaded", extra={"version": self.table.version})

    def lookup(self, dialled: str, now: datetime.datetime | None = None) -> RouteDecision:
        """Where ``dialled`` goes; no targets when there is no table or no route."""
        table = self.table
        if table is None:
            return RouteDecision(dialled, (), "no routing table", 0)
        return table.lookup(dialled, now)

    def apply_snapshot(self, version: int, data: Any) -> ApplyResult:
        """Replace the table with a full snapshot (HQ's ``snapshot``)."""
        if version == 0 or data is None or version == self.version:
            return ApplyResult("unchanged", version, self.version)
        try:
            entries = parse_routing_table(data)
        except RecordError as err:
            return self._refuse(version, err.message)
        return self._install(version, entries)

    def apply_update(self, version: int, base_version: int, delta: Any) -> ApplyResult:
        """Apply changes made against ``base_version`` (HQ's ``update``)."""
        if version <= self.version:
            return ApplyResult("unchanged", version, self.version)
        if base_version != self.version:
            return ApplyResult("resync", version, self.version, f"running {self.version}")
        try:
            data = changes.apply(self._data, delta)
        except changes.ChangesError as err:
            return self._refuse(version, err.message)
        return self._install(version, data)

    def _install(self, version: int, data: Any) -> ApplyResult:
        try:
            table = RoutingTable(version, data)
        except RoutingTableError as err:
            return self._refuse(version, str(err))
        assert self._state is not None
        stored = dict(data)
        self._state.put(STATE_KEY, {"version": version, "data": stored})
        self.table, self._data, self.refused = table, stored, ""
        log.info("routing table applied", extra={"version": version})
        return ApplyResult("applied", version, version)

    def _refuse(self, version: int, reason: str) -> ApplyResult:
        self.refused = f"version {version}: {reason}"
        log.warning(
            "routing snapshot refused; the previous table stays in force",
            extra={"version": version, "running": self.version, "reason": reason},
        )
        return ApplyResult("refused", version, self.version, reason)

    def check(self) -> tuple[bool, str]:
        """Health: which table is in force (healthy without one: calls stay local)."""
        table = self.table
        if table is None:
            return True, "no routing table yet"
        detail = f"version {table.version}, {len(table.sites)} sites, {table.extensions} extensions"
        return True, f"{detail}; refused {self.refused}" if self.refused else detail
