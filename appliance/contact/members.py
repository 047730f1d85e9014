"""Dynamic queue membership: extensions added to and removed from queues at run time.

``contact.queues.<name>.agents`` are a queue's static members; the API adds others
(``add``, with an optional penalty and skills) and removes them again (``remove``; a
static member stays). A dynamic member is offered the queue's calls like a static one
(``Acd.join``). Members are stored in LMDB (namespace ``contact-members``, key
``<queue>/<extension>``) as they change and joined again at start, before the agents'
states are read back, so membership and state survive a restart. A stored member of a
queue no longer configured, or one now static, is skipped (logged).

A member marked ``remote`` is an extension the routing table gives another site
(``appliance.contact.remote_agents``).

Errors (``AcdError``): ``queue-not-found`` (404), ``unknown-extension`` (422: no
extension of this site, or, for a remote member, of another site), ``already-member``
(409), ``not-a-member`` (404), ``static-member`` (409: configured, not removable by
API), ``agent-busy`` (409: removed while ringing or on a call).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from pydantic import ValidationError

from appliance.contact.acd import AcdError, Agent
from appliance.contact.service import ContactService
from appliance.contact.settings import AgentSettings, QueueSettings
from appliance.store import Store
from appliance.store.state import StateStore

log = logging.getLogger(__name__)

NAMESPACE = "contact-members"


class Members:
    """The queues' dynamic members, in the ACD and in LMDB."""

    def __init__(
        self,
        service: ContactService,
        extensions: Callable[[], Collection[str]],
        elsewhere: Callable[[str], bool] = lambda _: False,
    ):
        self._service = service
        self._extensions = extensions
        self._elsewhere = elsewhere
        self._state: StateStore | None = None

    def start(self, store: Store) -> None:
        """Join the stored members again (before the service restores agents' states)."""
        self._state = StateStore(store, NAMESPACE)
        for key, doc in list(self._state.items()):
            self._restore(key, doc)

    def add(self, queue: str, member: AgentSettings) -> Agent:
        """``member`` joins ``queue``; waiting callers may be offered to it at once."""
        self._queue(queue)
        self._check_extension(member)
        agent = self._service.acd.join(queue, member)
        self._store().put(f"{queue}/{member.extension}", member.model_dump())
        log.info("%s joined queue %s", member.extension, queue)
        self._service.member_joined(agent)
        return agent

    def remove(self, queue: str, extension: str) -> None:
        """The dynamic member ``extension`` leaves ``queue``."""
        if extension in self._queue(queue).numbers:
            raise AcdError("static-member", f"{extension} is configured in {queue}")
        self._service.acd.part(queue, extension)
        self._store().delete(f"{queue}/{extension}")
        log.info("%s left queue %s", extension, queue)

    def _check_extension(self, member: AgentSettings) -> None:
        """A local member is an extension here; a remote one another site's."""
        local = member.extension in self._extensions()
        if member.remote and (local or not self._elsewhere(member.extension)):
            raise AcdError("unknown-extension", f"{member.extension} is no other site's extension")
        if not member.remote and not local:
            raise AcdError("unknown-extension", f"{member.extension} is no extension here")

    def _queue(self, queue: str) -> QueueSettings:
        """The queue's configured settings (its static members)."""
        settings = self._service.settings.queues.get(queue)
        if settings is None:
            raise AcdError("queue-not-found", f"no queue {queue!r}")
        return settings

    def _store(self) -> StateStore:
        if self._state is None:
            raise AcdError("not-started", "the contact centre has not started")
        return self._state

    def _restore(self, key: str, doc: Any) -> None:
        queue = key.partition("/")[0]
        try:
            member = AgentSettings.model_validate(doc)
            self._queue(queue)
            self._service.acd.join(queue, member)
        except (ValidationError, AcdError) as err:
            log.warning("stored queue member %s skipped: %s", key, err,
                        extra={"error_id": "queue-member-skipped"})  # fmt: skip
