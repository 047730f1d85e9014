"""Flow versions: configured flows, replaced through the API, API versions kept in LMDB.

A flow from ``pbx.ivr.flows`` (or a legacy ``pbx.media.ivr`` menu) is version 1. Each
``PUT`` of a flow stores the next version under ``flow/<name>`` in the state store's
``ivr-flows`` namespace, so API flows survive restarts and override the configured one
of the same name. A call keeps the ``Flow`` object it started with; only new calls see
a new version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.ivr.model import Flow
from appliance.ivr.validate import FlowInvalidError, Known, parse_flow
from appliance.store import StateStore, Store

log = logging.getLogger(__name__)

NAMESPACE = "ivr-flows"


@dataclass(frozen=True)
class FlowVersion:
    """One version of a named flow."""

    name: str
    version: int
    flow: Flow
    source: str
    updated: float

    def summary(self) -> dict[str, Any]:
        """Name, version, where it came from and when."""
        return {"name": self.name, "version": self.version, "source": self.source,
                "updated": self.updated}  # fmt: skip

    def document(self) -> dict[str, Any]:
        """The summary and the flow itself."""
        return {**self.summary(), "flow": self.flow.model_dump(mode="json", exclude_none=True)}


class FlowStore:
    """API flows in the LMDB state store."""

    def __init__(self, store: Store) -> None:
        self._state = StateStore(store, NAMESPACE)

    def load(self) -> list[dict[str, Any]]:
        """Every stored flow record: name, version, doc, updated."""
        return [value for _, value in self._state.items("flow/")]

    def save(self, record: dict[str, Any]) -> None:
        """Store a flow record (fsync'd before the API answers)."""
        self._state.put(f"flow/{record['name']}", record)


class FlowRegistry:
    """The current version of every flow."""

    def __init__(self, configured: dict[str, Flow], known: Callable[[set[str]], Known]) -> None:
        self._known = known
        self._current = {n: FlowVersion(n, 1, f, "config", time.time())
                         for n, f in configured.items()}  # fmt: skip
        self._store: FlowStore | None = None

    def attach(self, store: FlowStore) -> None:
        """Load the API flows stored earlier (one that no longer validates is skipped)."""
        self._store = store
        records = store.load()
        names = set(self._current) | {str(r["name"]) for r in records}
        for record in records:
            name = str(record["name"])
            try:
                flow = parse_flow(name, record["doc"], self._known(names))
            except FlowInvalidError as err:
                log.error("stored ivr flow skipped: %s", err)
                continue
            self._current[name] = FlowVersion(name, int(record["version"]), flow, "api",
                                              float(record["updated"]))  # fmt: skip

    @property
    def attached(self) -> bool:
        """Whether API flows can be stored (the PBX has opened its store)."""
        return self._store is not None

    def get(self, name: str) -> FlowVersion | None:
        """The current version of ``name``."""
        return self._current.get(name)

    def flow(self, name: str) -> Flow | None:
        """The current flow of ``name`` (for ``flow`` nodes)."""
        found = self._current.get(name)
        return found.flow if found else None

    def all(self) -> list[FlowVersion]:
        """Every flow's current version, by name."""
        return [self._current[n] for n in sorted(self._current)]

    def names(self) -> set[str]:
        """Every flow name."""
        return set(self._current)

    def put(self, name: str, doc: Any) -> FlowVersion:
        """Validate ``doc``, store it and make it the next version of ``name``.

        Raises FlowInvalidError, or RuntimeError before ``attach``.
        """
        if self._store is None:
            raise RuntimeError("the flow store is not open yet")
        flow = parse_flow(name, doc, self._known(self.names() | {name}))
        previous = self._current.get(name)
        version = FlowVersion(name, previous.version + 1 if previous else 1, flow, "api",
                              time.time())  # fmt: skip
        self._store.save({"name": name, "version": version.version, "updated": version.updated,
                          "doc": flow.model_dump(mode="json")})  # fmt: skip
        self._current[name] = version
        return version
