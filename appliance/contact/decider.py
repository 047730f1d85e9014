"""The contact centre's link of the routing chain: a queue's number goes to a media worker."""

from __future__ import annotations

from appliance.contact.settings import ContactSettings
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision


class QueueDecider:
    """Sends a call for a queue (its number, or the user ``queue-<name>``) to the workers.

    Runs before the dial plan, which knows no queues and would refuse ``queue-<name>``.
    """

    name = "contact-queues"
    # Queue numbers are neither extensions nor ring groups (settings check), so the local
    # routes Kamailio answers itself never include one: this decider changes no such call.
    # A queue's number may match an outbound route's pattern: Kamailio asks about those.
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(self, settings: ContactSettings) -> None:
        self._users = {f"queue-{name}": name for name in settings.queues}
        self._users.update({q.number: name for name, q in settings.queues.items()})
        self.asked_numbers = frozenset(q.number for q in settings.queues.values())

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """A media decision for a queue's number; anything else unchanged."""
        if decision is not None or query.from_peer or query.from_trunk:
            return decision
        queue = self._users.get(query.dialled)
        if queue is None:
            return decision
        user = f"queue-{queue}"
        return Decision("media", uri=user, route=f"queue:{queue}", recording="never")
