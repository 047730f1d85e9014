"""The agent state log on the sync link: each ``agent-state-batch`` stored by (site, seq).

A record that is not a valid ``AgentStateChange`` (drivers/sync/agent_states.py) is
refused alone, counted and logged with its ``error_id`` (aggregator/refusals.py); the
batch is still acknowledged, since sending it again would not make that record valid.
Storing is insert-or-ignore, so a batch repeated after a lost ack changes nothing. Runs
on the ingest worker thread; the session acknowledges the batch after this commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from aggregator.refusals import Refusals
from aggregator.store.db import insert
from aggregator.store.schema import agent_states
from drivers.sync.agent_states import AgentStateChange, parse_agent_state

STREAM = "agent-state"


class AgentStateSync:
    """Stores agent state batches; each invalid record refused alone."""

    def __init__(self, engine: Callable[[], sa.Engine], refusals: Refusals) -> None:
        self._engine = engine
        self._refusals = refusals

    def store(self, site_id: str, records: list[tuple[int, bytes]]) -> None:
        """Store a batch; a repeated batch changes nothing."""

        def parse(entry: tuple[int, bytes]) -> tuple[int, AgentStateChange]:
            return entry[0], parse_agent_state(entry[1])

        now = int(time.time() * 1000)
        rows = [
            {"site_id": site_id, "seq": seq, "agent": change.agent, "state": change.state,
             "reason": change.reason, "at_ms": int(change.at * 1000),
             "registered": change.registered, "received_ms": now}
            for seq, change in self._refusals.valid(site_id, STREAM, parse, records)
        ]  # fmt: skip
        if rows:
            engine = self._engine()
            with engine.begin() as conn:
                conn.execute(insert(engine, agent_states).on_conflict_do_nothing(), rows)
