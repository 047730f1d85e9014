"""The contact centre's link of the routing chain: a queue's number goes to a media worker."""

from __future__ import annotations

from collections.abc import Callable

from appliance.contact.settings import ContactSettings
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision


class QueueDecider:
    """Sends a call for a queue (its number, or the user ``queue-<name>``) to the workers.

    Runs before the dial plan, which knows no queues and would refuse ``queue-<name>``.
    A trunk reaches a queue only through an IVR flow (an inbound route to ``ivr:<flow>``):
    the flow's ``queue`` node REFERs the caller, and the carrier's new INVITE for
    ``queue-<name>`` is let in while that hand-over is expected (``handing_over``).
    """

    name = "contact-queues"
    # Queue numbers are neither extensions nor ring groups (settings check), so the local
    # routes Kamailio answers itself never include one: this decider changes no such call.
    # A queue's number may match an outbound route's pattern: Kamailio asks about those.
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(
        self,
        settings: ContactSettings,
        handing_over: Callable[[str, str], bool] = lambda _caller, _to: False,
    ) -> None:
        self._handing_over = handing_over
        self._users = {f"queue-{name}": name for name in settings.queues}
        self._users.update({q.number: name for name, q in settings.queues.items()})
        self.asked_numbers = frozenset(q.number for q in settings.queues.values())

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """A media decision for a queue's number; anything else unchanged."""
        if decision is not None or query.from_peer:
            return decision
        if query.from_trunk and not self._handing_over(query.caller, query.dialled):
            return decision
        queue = self._users.get(query.dialled)
        if queue is None:
            return decision
        user = f"queue-{queue}"
        return Decision("media", uri=user, route=f"queue:{queue}", recording="never")
