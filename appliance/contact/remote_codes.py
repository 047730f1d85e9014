"""Agents at another site log in, pause and resume with their own site's feature codes.

Theory of operation: a remote agent's phone is registered at its own site (B), which
knows its feature codes but not the queues; the queue's site (A) knows the agent but not
B's codes. B's ``ForwardedAgentCodes`` reads a code dialled by one of its extensions that
is no agent at B, and sends the call, signed as any inter-site call, to the site its
``contact.agent_codes.queue_site`` names, with the action in a form that needs neither
site's codes: ``agent-login``, ``agent-logout``, ``agent-resume``, ``agent-pause-<reason>``
(``forwarded``). At A, ``RemoteAgentCodes`` (before the inter-site admission) checks the
signature, finds the queue member that is this extension of the calling site, runs the
action as A's own codes would (``AgentCodeDecider.answer``: state, LMDB, state log, CTI)
and answers with A's confirmation prompt, played by A's worker over the inter-site leg;
a refusal (no such member: 404 ``agent-not-found``, busy, not paused) goes back to the
phone as a SIP error. B never keeps agent state.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection
from dataclasses import replace

from appliance.contact.agent_codes import Action, AgentCodes, AgentRequest, parse
from appliance.contact.feature_codes import AgentCodeDecider
from appliance.pbx.deciders import OWN_NUMBERS, RouteQuery
from appliance.pbx.dialplan import Decision, DialPlan
from appliance.pbx.exchange import BranchExchange
from appliance.pbx.intersite import InterSite
from appliance.routing.peering import PeerCall, PeerError

log = logging.getLogger(__name__)

_PLAIN: dict[str, Action] = {"login": "login", "logout": "logout", "resume": "resume"}
_FORWARDED = re.compile(r"^agent-(login|logout|resume|pause-([a-z0-9][a-z0-9_-]{0,31}))$")


def forwarded(request: AgentRequest) -> str:
    """The dialled number that carries ``request`` to the queue's site."""
    if request.action == "pause":
        return f"agent-pause-{request.reason}"
    return f"agent-{request.action}"


def unforwarded(dialled: str) -> AgentRequest | None:
    """The request a forwarded number carries (None: it is none)."""
    found = _FORWARDED.match(dialled)
    if found is None:
        return None
    if found.group(2) is not None:
        return AgentRequest("pause", found.group(2))
    return AgentRequest(_PLAIN[found.group(1)])


class ForwardedAgentCodes:
    """At the agent's site: sends the codes of an extension that is no agent here to the
    queue's site."""

    name = "contact-forwarded-agent-codes"
    # Only agent codes (``*``), never a trunk's or a break-out's number.
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(
        self,
        codes: AgentCodes,
        intersite: InterSite,
        dialplan: Callable[[], DialPlan],
        is_agent: Callable[[str], bool],
    ) -> None:
        self._codes = codes
        self._intersite = intersite
        self._dialplan = dialplan
        self._is_agent = is_agent

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """A signed hop to the queue's site for a forwarded code; anything else unchanged."""
        site = self._codes.queue_site
        if decision is not None or query.from_peer or query.from_trunk or site is None:
            return decision
        request = parse(self._codes, query.dialled)
        plan = self._dialplan()
        if request is None or self._is_agent(query.caller) or query.caller not in plan.extensions:
            return decision
        if request.action == "pause" and request.reason is None:
            return Decision("reject", code=404, reason="pause-reason-unknown")
        routed = self._intersite.to_site(plan, query.caller, site, forwarded(request),
                                         query.call_id)  # fmt: skip
        if routed is None:
            log.warning("agent code %s of %s: site %s cannot be reached", query.dialled,
                        query.caller, site,
                        extra={"error_id": "queue-site-unreachable"})  # fmt: skip
            return Decision("reject", code=503, reason="queue-site-unreachable")
        log.info("agent code %s of %s sent to site %s", query.dialled, query.caller, site)
        return routed


class RemoteAgentCodes:
    """At the queue's site: runs a code another site forwarded for one of its extensions
    that is a remote agent here."""

    name = "contact-remote-agent-codes"
    # Only another site's forwarded codes, never a trunk's or a break-out's number.
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(self, codes: AgentCodeDecider, members: Callable[[], Collection[str]],
                 intersite: InterSite) -> None:  # fmt: skip
        self._codes = codes
        self._members = members
        self._intersite = intersite

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """The confirmation (or refusal) of a forwarded code; anything else unchanged."""
        if decision is not None or not query.from_peer or unforwarded(query.dialled) is None:
            return decision
        try:
            call = self._intersite.authenticate(query.raw or {})
        except PeerError:
            return decision  # the inter-site admission refuses it, with its reason
        request = unforwarded(call.dialled)
        if request is None:
            return decision
        agent = self._member(call)
        if agent is None:
            log.warning("agent code from %s at site %s refused: no remote agent here",
                        call.caller, call.from_site,
                        extra={"error_id": "agent-not-found",
                               "call_id": query.call_id})  # fmt: skip
            answer = Decision("reject", code=404, reason="agent-not-found")
        else:
            answer = self._codes.answer(request, agent, query)
        return replace(answer, peer_site=call.from_site, caller_ext=call.caller,
                       conversation=call.conversation)  # fmt: skip

    def _member(self, call: PeerCall) -> str | None:
        """The remote member that is the caller's extension at the calling site."""
        for number in sorted(self._members()):
            owner = self._intersite.owner(number)
            if owner is not None and owner.site == call.from_site and owner.number == call.caller:
                return number
        return None


def forward_agent_codes(
    codes: AgentCodes | None, pbx: BranchExchange, is_agent: Callable[[str], bool]
) -> None:
    """Join ``ForwardedAgentCodes`` to the chain, ahead of this site's own agent codes,
    when the codes name a ``queue_site`` and the site routes between sites."""
    if codes is None or codes.queue_site is None or pbx.intersite is None:
        return
    forward = ForwardedAgentCodes(codes, pbx.intersite, lambda: pbx.dialplan, is_agent)
    pbx.chain.add(forward, OWN_NUMBERS - 1)
