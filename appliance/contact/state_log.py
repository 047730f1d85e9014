"""The agent state log: every change of an agent's state, kept durably until HQ has it.

Each change (state, pause reason or phone registration) becomes an ``AgentStateChange``
(drivers/sync/agent_states.py) appended to the ``agent-state`` outbox. A change that a
restart would restore differently (login, logout, pause, resume) is written in the same
LMDB commit as the agent's saved state (appliance/contact/service.py). The others
(ringing, on a call, wrap-up and back) lie on the way to an offer, which must not wait
for an fsync: they are staged and committed together right after the step that made
them (``call_soon``), so a crash can lose only the changes of that last step, which the
restart then supersedes by logging every agent as restored. Staged entries always go
first, so the outbox keeps the order of the changes.

The sync client sends the outbox up in ``agent-state-batch`` messages and deletes what
HQ acknowledged after its commit; HQ stores each entry once by (site, sequence), so a
batch sent again after a lost session adds nothing. Times are wall-clock epoch seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from appliance.contact.acd import Agent
from appliance.store import Outbox, Store
from drivers.sync.agent_states import AgentStateChange
from drivers.sync.protocol import AgentStateBatch
from drivers.sync.session import BatchStream

AGENT_OUTBOX = "agent-state"
# Registered with the sync client in appliance/service.py ``_sync``.
AGENT_STATES = BatchStream(AGENT_OUTBOX, AgentStateBatch)


class AgentStateLog:
    """Appends agents' changes to the ``agent-state`` outbox, each once and in order."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._outbox = Outbox(store, AGENT_OUTBOX)
        self._clock = clock
        self._last: dict[str, tuple[str, str, bool]] = {}
        self._staged: list[bytes] = []

    def change(self, agent: Agent) -> AgentStateChange | None:
        """The entry for ``agent``'s current state, or None when it was the last one."""
        key = (agent.state, agent.reason, agent.registered)
        if self._last.get(agent.number) == key:
            return None
        self._last[agent.number] = key
        return AgentStateChange(agent=agent.number, state=agent.state, reason=agent.reason,  # type: ignore[arg-type]
                                at=self._clock(), registered=agent.registered)  # fmt: skip

    def write_in(self, txn: Any, change: AgentStateChange | None) -> None:
        """Append the staged entries, then ``change``, inside the caller's transaction."""
        entries = [*self._staged, *([change.pack()] if change is not None else [])]
        self._staged.clear()
        if entries:
            self._outbox.append_in(txn, entries)

    def stage(self, change: AgentStateChange) -> None:
        """Commit ``change`` after the current step of the event loop (now without one)."""
        self._staged.append(change.pack())
        if len(self._staged) > 1:
            return
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:
            self.flush()

    def flush(self) -> None:
        """Commit the staged entries."""
        if self._staged:
            with self._store.write() as txn:
                self.write_in(txn, None)
