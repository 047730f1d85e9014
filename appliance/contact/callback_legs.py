"""The call back to a caller, placed by a media worker for an agent of another site.

Theory of operation: once the agent answers a callback's leg, the worker calls the
caller from the agent's extension. For a local agent the dial plan routes it as any call
of that extension. An agent of another site is no extension here, so the dial plan
would refuse an outside number (``not-an-extension``); ``CallbackLegDecider`` lets that
one leg through, and only while the contact centre has a try of a callback from that
agent to that exact number under way (``ContactService.calling_back``): the site places
it on its own behalf, with its default class of service and the outbound route's caller
ID (never the agent's or a made-up number), through the site's outbound routes, else the
routing table's (another site's trunk). Compliance and recording policy apply after it,
as to any call. Any other call with the agent's number in From takes its usual path.
"""

from __future__ import annotations

from collections.abc import Callable

from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision, DialPlan
from appliance.pbx.intersite import InterSite


class CallbackLegDecider:
    """Routes a worker's call back to an outside caller for an agent of another site."""

    name = "contact-callback-legs"
    # Only a media worker's calls from no local extension, which Kamailio always asks about.
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(
        self,
        calling_back: Callable[[str, str], bool],
        dialplan: Callable[[], DialPlan],
        intersite: InterSite | None,
    ) -> None:
        self._calling_back = calling_back
        self._dialplan = dialplan
        self._intersite = intersite

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """The site's route for a callback try's call to the caller; else unchanged."""
        raw = query.raw or {}
        if decision is not None or raw.get("media") != "1" or query.from_peer:
            return decision
        plan = self._dialplan()
        if query.caller in plan.extensions or plan.local(query.dialled) is not None:
            return decision
        if not self._calling_back(query.caller, query.dialled):
            return decision
        routed = plan.for_site(query.caller, query.dialled)
        if routed is None and self._intersite is not None:
            routed = self._intersite.routed(plan, query.caller, query.dialled, query.call_id)
        return routed or decision
