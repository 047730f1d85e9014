"""The agent state log's record: one change of one contact-centre agent's state.

The appliance appends one per change to its ``agent-state`` outbox and sends them up in
``agent-state-batch`` messages (drivers/sync/protocol.py); HQ stores each once per
(site, sequence) and reports on them (aggregator/queues/agents.py). Both ends use this
model, so the record's shape is written down once. A site's record is untrusted: ``parse``
takes msgpack bytes and returns the record or raises ``RecordError``, whatever the input.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.sync.limits import TIME_MAX_S, TIME_MIN_S
from drivers.sync.protocol import MSGPACK_ERRORS
from drivers.sync.records import RecordError

AGENT_STATES = ("logged-out", "available", "ringing", "on-call", "wrap-up", "paused")
AgentStateName = Literal["logged-out", "available", "ringing", "on-call", "wrap-up", "paused"]


class AgentStateChange(BaseModel):
    """Agent ``agent`` entered ``state`` (with ``reason`` when paused) at ``at`` (epoch s)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")

    agent: Annotated[str, Field(pattern=r"^[0-9A-Za-z_+*#.-]{1,32}$")]
    state: AgentStateName
    reason: Annotated[str, Field(max_length=64)] = ""
    at: Annotated[float, Field(ge=TIME_MIN_S, le=TIME_MAX_S, allow_inf_nan=False)]
    registered: bool = True

    def pack(self) -> bytes:
        """The msgpack bytes of the record (its wire form)."""
        return bytes(msgpack.packb(self.model_dump(), use_bin_type=True))


def parse_agent_state(raw: bytes) -> AgentStateChange:
    """The record in ``raw``, or RecordError (``record-agent-state-invalid``: the first problem)."""
    try:
        doc = msgpack.unpackb(raw, raw=False)
    except MSGPACK_ERRORS as err:
        raise RecordError("record-not-msgpack", f"not msgpack: {err}") from None
    if type(doc) is not dict:
        raise RecordError("record-not-map", "an agent state change is a msgpack map")
    if type(doc.get("at")) is int:
        doc["at"] = float(doc["at"])
    try:
        return AgentStateChange.model_validate(doc)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        raise RecordError("record-agent-state-invalid", f"{where}: {first['msg']}") from None
