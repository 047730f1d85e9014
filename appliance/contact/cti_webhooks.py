"""CTI events as signed webhooks: each event of the stream, chosen by name globs, is
queued on the PBX's webhook notifier (``appliance.pbx.webhooks``), so it is signed,
ordered with the call notifications and retried like them.

The webhook's ``event`` is the CTI name prefixed with ``contact.`` (``contact.call.queued``),
so a receiver of both families never mistakes the CTI ``call.answered`` (the agent
answered a queued caller) for the PBX's (a call was answered). The body carries the
stream's ``seq`` and ``run`` (drawn at each start, as ``seq`` starts again at 1), and the
header ``X-Callmesh-Event-Id: <run>-<seq>`` is the idempotency key of a delivery.
"""

from __future__ import annotations

import fnmatch
import secrets
from collections.abc import Sequence
from typing import Any, Protocol

from appliance.contact.cti import CtiEvent

PREFIX = "contact."
EVENTS = (
    "call.queued", "call.offered", "call.agent-ringing", "call.announced", "call.answered",
    "call.ended", "call.hung-up", "call.transferred", "call.abandoned", "call.overflowed",
    "call.timeout", "call.interrupted", "call.callback-offered", "call.callback-requested",
    "call.callback-answered", "call.callback-ended", "call.callback-retry",
    "call.callback-failed", "agent.state", "supervisor.joined",
    "supervisor.mode", "supervisor.left", "supervisor.refused", "call.desk-answer",
    "call.party-joined", "call.party-left",
)  # fmt: skip


class Notifier(Protocol):
    """The part of ``WebhookService`` the CTI webhooks use."""

    def publish(self, event: str, fields: dict[str, Any], event_id: str | None = None) -> None: ...


def unknown_globs(globs: Sequence[str]) -> list[str]:
    """The globs that match no CTI event (a typo would silently send nothing)."""
    return [g for g in globs if not fnmatch.filter(EVENTS, g)]


class CtiWebhooks:
    """A CTI listener that queues the chosen events on the webhook notifier."""

    def __init__(self, notifier: Notifier, globs: Sequence[str]) -> None:
        self._notifier = notifier
        self._globs = tuple(globs)
        self.run = secrets.token_hex(6)

    def wanted(self, event: str) -> bool:
        """Whether ``event`` (a CTI name) is one the settings send."""
        return any(fnmatch.fnmatchcase(event, glob) for glob in self._globs)

    def on_event(self, item: CtiEvent) -> None:
        """Queue ``item`` when it is wanted (never blocks)."""
        if not self.wanted(item.event):
            return
        fields: dict[str, Any] = {"seq": item.seq, "run": self.run,
                                     "call_id": item.data.get("call_id"), "at": item.at,
                                     "data": item.data}  # fmt: skip
        self._notifier.publish(PREFIX + item.event, fields, f"{self.run}-{item.seq}")
