"""Agents at another site: queue members whose extension another site owns.

Theory of operation: a queue member marked ``remote`` is an extension of another site;
the routing table says which. The caller's media worker rings it like any agent: the
leg's INVITE comes from the worker with the queue's caller in From, and
``RemoteAgentDecider`` sends it over the inter-site route (a signed hop to the owning
site's PBX), also when the caller is no extension here. Everything else (one call at a
time, ring timeout and ``no-answer`` pause, wrap-up, CDRs, the state log) is the ACD's,
as for a local agent.

The agent's registration lives at its own site, so this site asks there: every
``poll_s`` ``RemoteAgents`` sends each remote agent's site a SIP OPTIONS to the
extension, from this site's SIP address and signed like a call (``X-Callmesh-*``
headers, appliance/routing/peering.py). The owning site's Kamailio has its appliance
check the signature as for a call and answers 200 when the extension has a registered
phone, 480 when not (404 for no such extension, 403 for a refused signature). The
answers are cached in ``registered`` and merged with this site's own registrations, so
an agent whose phone is gone, whose site does not answer within ``timeout_s``, or whose
site the peer monitor marks down is offered nothing. The probes of a round run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision, DialPlan
from appliance.pbx.intersite import InterSite
from appliance.routing import peering
from appliance.routing.peering import PeerCall
from appliance.routing.peers import PeerMonitor

log = logging.getLogger(__name__)

POLL_S = 5.0
TIMEOUT_S = 1.0
PROBE_CALLER = "0"


class OptionsProbe(Protocol):
    """Sends an OPTIONS to ``user`` at ``host:port``; the status code, None for none."""

    def __call__(self, host: str, port: int, wait_s: float, *, user: str,
                 headers: Callable[[str], str]) -> Awaitable[int | None]: ...  # fmt: skip


class RemoteAgents:
    """Polls other sites for the registration of this site's remote agents (a
    lifecycle component)."""

    name = "contact-remote-agents"

    def __init__(
        self,
        numbers: Callable[[], Collection[str]],
        intersite: InterSite,
        probe: OptionsProbe,
        poll_s: float = POLL_S,
        timeout_s: float = TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._numbers = numbers
        self._intersite = intersite
        self._probe = probe
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self._clock = clock
        self.registered: frozenset[str] = frozenset()
        self._unknown: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start polling in the background."""
        self._task = asyncio.create_task(self._run(), name="contact-remote-agents")

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def numbers(self) -> Collection[str]:
        """The remote agents of this site's queues."""
        return self._numbers()

    def is_remote(self, number: str) -> bool:
        """Whether ``number`` is a remote agent of a queue here."""
        return number in self._numbers()

    async def poll_once(self) -> None:
        """Ask every remote agent's site once, concurrently; cache who is registered."""
        numbers = sorted(self._numbers())
        answers = await asyncio.gather(*(self._ask(n) for n in numbers))
        registered = frozenset(n for n, ok in zip(numbers, answers, strict=True) if ok)
        for number in sorted(registered ^ (self.registered & set(numbers))):
            log.info("remote agent %s %s", number,
                     "registered" if number in registered else "unavailable")  # fmt: skip
        self.registered = registered

    async def _ask(self, number: str) -> bool:
        """True when ``number``'s own site answers 200 to an OPTIONS for it."""
        target = self._intersite.owner(number)
        if target is None or target.site is None or target.address is None:
            if number not in self._unknown:  # once, not every poll
                log.warning("remote agent %s belongs to no other site in the routing table",
                            number, extra={"error_id": "remote-agent-unknown"})  # fmt: skip
            self._unknown.add(number)
            return False
        self._unknown.discard(number)
        peers = self._intersite.peers
        if not _site_up(peers, target.site):
            return False
        secret = self._intersite.settings.secret_for(target.site)
        try:
            host, port = peering.split_address(target.address)
        except ValueError:
            log.warning("site %s address is not an IP address", target.site)
            return False
        if not secret:
            log.warning("no peering secret for site %s: remote agent %s unavailable",
                        target.site, number,
                        extra={"error_id": "remote-agent-no-secret"})  # fmt: skip
            return False
        headers = self._signer(target.site, target.number, secret)
        code = await self._probe(host, port, self.timeout_s, user=target.number, headers=headers)
        if code not in (200, 480, 404, None):
            log.warning("site %s answered %s for remote agent %s", target.site, code, number)
        return code == 200

    def _signer(self, site: str, extension: str, secret: str) -> Callable[[str], str]:
        """The signed headers of a probe with a given Call-ID (as a call's, with caller 0)."""
        conversation = str(uuid.uuid4())

        def headers(call_id: str) -> str:
            call = PeerCall(self._intersite.site_id, site, call_id, PROBE_CALLER, extension,
                            conversation)  # fmt: skip
            return call.headers(secret, int(self._clock()))

        return headers

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.poll_once()
            except Exception:
                log.exception("remote agent poll failed")
            await asyncio.sleep(max(0.05, self.poll_s - (time.monotonic() - started)))


def _site_up(peers: PeerMonitor | None, site: str) -> bool:
    """False for a site the peer monitor says is down; keeps the site probed."""
    if peers is None:
        return True
    peers.touch(site)
    return peers.usable(site)


class RemoteAgentDecider:
    """Routes a media worker's leg to a remote agent through the inter-site route."""

    name = "contact-remote-agents"
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(self, agents: RemoteAgents, intersite: InterSite,
                 dialplan: Callable[[], DialPlan]) -> None:  # fmt: skip
        self._agents = agents
        self._intersite = intersite
        self._dialplan = dialplan

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """Hops to the agent's site for a worker's call to a remote agent; else unchanged."""
        raw = query.raw or {}
        if decision is not None or raw.get("media") != "1" or query.from_peer:
            return decision
        if not self._agents.is_remote(query.dialled):
            return decision
        plan = self._dialplan()
        return self._intersite.routed(plan, query.caller, query.dialled, query.call_id)
