"""The agent state log: every change of an agent's state, kept durably until HQ has it.

Each change (state, pause reason or phone registration) becomes an ``AgentStateChange``
(drivers/sync/agent_states.py) appended to the ``agent-state`` outbox, in the same LMDB
commit as the agent's saved state when that changes too (appliance/contact/service.py).
The sync client sends the outbox up in ``agent-state-batch`` messages and deletes what
HQ acknowledged after its commit; HQ stores each entry once by (site, sequence), so a
batch sent again after a lost session adds nothing. Times are wall-clock epoch seconds.
"""

from __future__ import annotations

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
    """Appends agents' changes to the ``agent-state`` outbox, each once."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._outbox = Outbox(store, AGENT_OUTBOX)
        self._clock = clock
        self._logged: dict[str, tuple[str, str, bool]] = {}

    def change(self, agent: Agent) -> AgentStateChange | None:
        """The entry for ``agent``'s current state, or None when it was the last logged."""
        key = (agent.state, agent.reason, agent.registered)
        if self._logged.get(agent.number) == key:
            return None
        return AgentStateChange(agent=agent.number, state=agent.state, reason=agent.reason,  # type: ignore[arg-type]
                                at=self._clock(), registered=agent.registered)  # fmt: skip

    def append_in(self, txn: Any, change: AgentStateChange) -> None:
        """Append ``change`` inside the caller's write transaction."""
        self._outbox.append_in(txn, [change.pack()])

    def committed(self, change: AgentStateChange) -> None:
        """``change`` is on disk: the next entry of its agent must differ from it."""
        self._logged[change.agent] = (change.state, change.reason, change.registered)
