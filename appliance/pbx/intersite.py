"""Calls between sites: the routing table's targets as hops, and admission of peer calls.

Outbound (``InterSite.outbound``, the dial plan's router): a number that is no local
extension, group or outbound route is looked up in the routing table; its targets
become an ordered list of hops Kamailio tries one after the other (serial forking on
timeout or 5xx). Another site is a hop to its PBX with signed headers
(appliance/routing/peering.py) presenting "name (site)" and the caller's extension with
the plan's prefix; a trunk of another site is a hop to that site naming the trunk
(``via``); a local trunk is dialled presenting the target's caller ID, which the table
guarantees the trunk owns. Peers the monitor knows to be down are skipped up front.

Inbound (``InterSite.admit``): an INVITE carrying ``X-Callmesh-Auth`` must come from
the address the snapshot gives that site and be signed with the pair's secret; it then
rings a local extension or group, leaves through the named local trunk presenting
only a number that trunk owns (a GSM trunk group presents the SIM's own number), or,
for a number that is not local (a rule sent it to this site), is routed by this site's
rules over its own trunks only, so a call never travels on to a third site. Anything
else is refused with a SIP reply and a log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from appliance.pbx.cdr import conversation_id
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import COS_RANK, Decision, DialPlan, Hop
from appliance.pbx.settings import PeeringSettings
from appliance.routing import peering
from appliance.routing.peering import PeerAuthError, PeerCall, PeerError, PeerHeaderError
from appliance.routing.peers import PeerMonitor
from appliance.routing.table import RouteDecision, RoutingTable, Target

log = logging.getLogger(__name__)

_UNSAFE = str.maketrans(dict.fromkeys('"\\|\r\n<>', " "))


class InterSite:
    """Routes to other sites and admits calls from them (pure but for the clock)."""

    def __init__(
        self,
        site_id: str,
        settings: PeeringSettings,
        table: Callable[[], RoutingTable | None],
        names: Mapping[str, str],
        peers: PeerMonitor | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.site_id = site_id
        self.settings = settings
        self._table = table
        self.names = dict(names)
        self.peers = peers
        self._clock = clock

    def outbound(self, plan: DialPlan, caller: str, dialled: str, call_id: str) -> Decision | None:
        """Hops for ``dialled`` from the routing table; None when it has no route."""
        if caller not in plan.extensions:
            return None
        return self.routed(plan, caller, dialled, call_id)

    def routed(self, plan: DialPlan, caller: str, dialled: str, call_id: str) -> Decision | None:
        """``outbound`` for a caller the site vouches for without it being an extension
        (a queue's caller, on the leg a media worker rings an agent at another site)."""
        table = self._table()
        if table is None:
            return None
        found = table.lookup(dialled)
        if not found.routed:
            return None
        route = _route_name(found)
        rule_route = any(t.rule for t in found.targets)
        if rule_route and COS_RANK[plan.cos(caller)] < COS_RANK[self.settings.routed_cos]:
            return Decision("reject", code=403, reason="class-of-service", route=route)
        if all(t.kind == "extension" for t in found.targets):
            return None  # the table's own extension that this PBX does not have
        conversation = conversation_id(self.site_id, call_id)
        usable = []
        for target in found.targets:
            hop = self._hop(plan, table, target, caller, dialled, call_id, conversation)
            if hop is not None:
                usable.append((target, hop))
        if not usable:
            return Decision("reject", code=503, reason="all-routes-down", route=route)
        first = usable[0][0]
        return Decision("route", route=route, trunk=first.via or first.trunk or "",
                        hops=tuple(hop for _, hop in usable), peer_site=first.site or "",
                        conversation=conversation)  # fmt: skip

    def to_site(
        self, plan: DialPlan, caller: str, site: str, dialled: str, call_id: str
    ) -> Decision | None:
        """A signed hop to ``site`` for ``dialled``, a number that site answers though no
        table entry names it (an agent's feature code); None: no such site or no hop."""
        table = self._table()
        if table is None or site not in table.sites or site == self.site_id:
            return None
        target = Target("site", dialled, site, table.sites[site]["address"])
        conversation = conversation_id(self.site_id, call_id)
        hop = self._hop(plan, table, target, caller, dialled, call_id, conversation)
        if hop is None:
            return None
        return Decision("route", route=f"site:{site}", hops=(hop,), peer_site=site,
                        conversation=conversation)  # fmt: skip

    def owner(self, number: str) -> Target | None:
        """The other site that owns extension ``number`` (a ``site`` target with its
        address), or None (local, unknown, or no routing table)."""
        table = self._table()
        if table is None:
            return None
        found = table.lookup(number).targets
        if len(found) != 1 or found[0].kind != "site" or found[0].rule is not None:
            return None
        return found[0]

    def _hop(
        self,
        plan: DialPlan,
        table: RoutingTable,
        target: Target,
        caller: str,
        dialled: str,
        call_id: str,
        conversation: str,
    ) -> Hop | None:
        route = target.rule or f"site:{target.site}"
        if target.kind == "trunk":
            return self._trunk_hop(plan, target, route)
        if target.kind != "site" or target.site is None or target.address is None:
            return None
        label = f"site:{target.site}" + (f" via {target.via}" if target.via else "")
        secret = self.settings.secret_for(target.site)
        if not secret:
            log.warning("no peering secret: site hop skipped", extra={"site": target.site})
            return None
        if self.peers is not None:
            self.peers.touch(target.site)
            if not self.peers.usable(target.site):
                self.peers.failed_over(route, label, "peer-down")
                return None
        try:
            host, port = peering.split_address(target.address)
        except ValueError:
            log.warning("site address is not an IP address", extra={"site": target.site})
            return None
        call = PeerCall(self.site_id, target.site, call_id, caller, target.number,
                        conversation, target.via or "", target.caller_id or "")  # fmt: skip
        name = (self.names.get(caller) or caller).translate(_UNSAFE).strip()
        return Hop(
            "site",
            f"sip:{target.number}@{peering.sip_host(host, port)}",
            target.caller_prefix + caller,
            label,
            display=f'"{name} ({table.site_name(self.site_id).translate(_UNSAFE)})"',
            headers=call.headers(secret, int(self._clock())),
            timer_ms=self.settings.hop_timer_ms,
        )

    def _trunk_hop(self, plan: DialPlan, target: Target, route: str) -> Hop | None:
        trunk = plan.trunks.get(target.trunk or "")
        if trunk is None or not target.caller_id or target.caller_id not in target.owned:
            log.warning(
                "routing table trunk is not configured here; target skipped",
                extra={"trunk": target.trunk, "route": route},
            )
            return None
        uri = f"sip:{target.number}@{peering.sip_host(trunk.host, trunk.port)}"
        return Hop("trunk", uri, target.caller_id, f"trunk:{trunk.name}")

    def admit(self, plan: DialPlan, query: Mapping[str, str]) -> Decision:
        """The decision for an INVITE from another site (refusals included)."""
        try:
            call = self.authenticate(query)
        except PeerError as err:
            log.warning(
                "inter-site call refused",
                extra={"reason": err.reason, "detail": str(err), "source": query.get("source")},
            )
            return Decision("reject", code=err.code, reason=err.reason)
        decision = self._via(plan, call) if call.via else plan.local(call.dialled)
        if decision is None and not call.via:
            decision = self._onward(plan, call)
        if decision is None:
            decision = Decision("reject", code=404, reason="unknown-extension")
        elif not call.via and decision.action != "route":
            decision = replace(decision, route=f"site:{call.from_site}")
        return replace(decision, peer_site=call.from_site, caller_ext=call.caller,
                       conversation=call.conversation)  # fmt: skip

    def authenticate(self, query: Mapping[str, str]) -> PeerCall:
        """The signed call a peer's INVITE (or OPTIONS) carries, or PeerError."""
        auth = peering.parse_auth(query.get("auth", ""))
        table = self._table()
        if table is None or auth.site not in table.sites or auth.site == self.site_id:
            raise PeerAuthError("unknown-peer-site", f"no site {auth.site!r} in the directory")
        try:
            trusted = peering.split_address(table.sites[auth.site]["address"])
            host, _, port = query.get("source", "").rpartition(":")
            source = (host.strip("[]"), int(port))
        except ValueError:
            raise PeerHeaderError("peer source address unreadable") from None
        # An OPTIONS (is an agent registered here?) comes from the appliance's own
        # socket on the site's address, not from its Kamailio: any port of that address.
        probe = query.get("method") == "OPTIONS" and source[0] == trusted[0]
        if source != trusted and not probe:
            raise PeerAuthError(
                "untrusted-peer-source",
                f"site {auth.site} calls from {trusted[0]}:{trusted[1]}, not {host}:{port}",
            )
        secret = self.settings.secret_for(auth.site)
        if not secret:
            raise PeerAuthError("peering-disabled", "no peering secret configured")
        call = peering.parse_call(auth, self.site_id, query.get("call_id", ""),
                                  query.get("dialled", ""), query.get("peer_caller", ""),
                                  query.get("conversation", ""), query.get("via", ""),
                                  query.get("peer_caller_id", ""))  # fmt: skip
        peering.verify(call, auth, secret, self._clock(), self.settings.max_skew_s)
        return call

    def _onward(self, plan: DialPlan, call: PeerCall) -> Decision | None:
        """This site's rules for a number another site sent here: local trunks only."""
        table = self._table()
        if table is None:
            return None
        found = table.lookup(call.dialled)
        hops = []
        for target in found.targets:
            if target.kind == "trunk":
                hop = self._trunk_hop(plan, target, target.rule or "")
                if hop is not None:
                    hops.append((target, hop))
        if not hops:
            return None
        first = hops[0][0]
        return Decision("route", route=_route_name(found), trunk=first.trunk or "",
                        hops=tuple(hop for _, hop in hops))  # fmt: skip

    def _via(self, plan: DialPlan, call: PeerCall) -> Decision:
        table = self._table()
        entry = table.trunks.get(call.via) if table is not None else None
        if entry is not None and call.via in plan.gsm_groups:
            # A GSM channel presents its SIM's own number: nothing to choose or spoof.
            return Decision("gsm", uri=call.dialled, route=f"via:{call.via}", trunk=call.via)
        trunk = plan.trunks.get(call.via)
        if entry is None or trunk is None:
            log.warning("break-out via an unknown trunk", extra={"trunk": call.via})
            return Decision("reject", code=404, reason="unknown-trunk")
        owned = entry["numbers"]
        caller_id = call.caller_id if call.caller_id in owned else entry["caller_id"]
        if call.caller_id and call.caller_id not in owned:
            log.warning(
                "caller ID not owned by the trunk; its own number is presented",
                extra={"trunk": call.via, "asked": call.caller_id},
            )
        if caller_id not in owned:
            caller_id = sorted(owned)[0]
        uri = f"sip:{call.dialled}@{peering.sip_host(trunk.host, trunk.port)}"
        return Decision("trunk", uri=uri, caller_id=caller_id, route=f"via:{call.via}",
                        trunk=call.via)  # fmt: skip


def _route_name(found: RouteDecision) -> str:
    first = found.targets[0]
    return first.rule or f"site:{first.site}"


class PeerAdmission:
    """The routing chain's first link for calls from other sites (refused without peering)."""

    name = "peer-admission"
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(self, intersite: InterSite | None, dialplan: Callable[[], DialPlan]) -> None:
        self._intersite = intersite
        self._dialplan = dialplan

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """Admit or refuse a call from another site; other calls pass unchanged."""
        if not query.from_peer or decision is not None:
            return decision
        if self._intersite is None:
            log.warning("call from another site refused: no routing here")
            return Decision("reject", code=403, reason="peering-disabled")
        return self._intersite.admit(self._dialplan(), query.raw or {})
