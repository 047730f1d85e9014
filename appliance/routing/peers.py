"""Peer health: SIP OPTIONS to other sites' PBXs, and per-route failover counts.

Theory of operation: every ``interval_s`` the monitor probes the peers worth knowing
about — the sites this site's rules can hand calls to, plus any site a call went to in
the last ``recent_s`` (flat-plan extension calls) — at most ``max_peers`` of them, all at
once, each bounded by ``timeout_s``. A peer is down after ``down_after`` missed probes
in a row and up again after one answer. The dial plan skips peers that are down before
Kamailio tries them (a skipped or failed hop is a failover); a peer never probed counts
as up, so a call is never refused for lack of data. The probe itself is injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from appliance.routing.peering import split_address
from appliance.routing.table import RoutingTable

log = logging.getLogger(__name__)

Probe = Callable[[str, int, float], Awaitable[bool]]


@dataclass
class PeerState:
    """What the last probes of one peer said."""

    address: str
    up: bool | None = None
    misses: int = 0
    since: float = 0.0
    rtt_ms: float | None = None

    def doc(self, wall: float, mono: float) -> dict[str, Any]:
        changed = wall - (mono - self.since) if self.since else None
        return {
            "address": self.address,
            "up": self.up,
            "since": round(changed, 3) if changed is not None else None,
            "rtt_ms": self.rtt_ms,
        }


class PeerMonitor:
    """Probes peer sites (a lifecycle component) and counts failovers per route."""

    name = "peers"

    def __init__(
        self,
        table: Callable[[], RoutingTable | None],
        probe: Probe,
        interval_s: float = 1.0,
        timeout_s: float = 0.5,
        down_after: int = 2,
        max_peers: int = 64,
        recent_s: float = 600.0,
    ) -> None:
        self._table = table
        self._probe = probe
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.down_after = down_after
        self.max_peers = max_peers
        self.recent_s = recent_s
        self.peers: dict[str, PeerState] = {}
        self._recent: dict[str, float] = {}
        self.failovers: Counter[tuple[str, str, str]] = Counter()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start probing in the background."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop probing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def touch(self, site: str) -> None:
        """A call was routed to ``site``: keep it probed for a while."""
        self._recent[site] = time.monotonic()

    def usable(self, site: str) -> bool:
        """False only for a peer the probes say is down."""
        state = self.peers.get(site)
        return state is None or state.up is not False

    def failed_over(self, route: str, target: str, reason: str) -> None:
        """Count one failover away from ``target`` on ``route``."""
        self.failovers[(route, target, reason)] += 1
        log.warning("route failed over", extra={"route": route, "target": target, "reason": reason})

    def report(self) -> dict[str, Any]:
        """Peer health and failover counts, as sent to HQ in ``status``."""
        wall, mono = time.time(), time.monotonic()
        totals: Counter[str] = Counter()
        for (route, _, _), count in self.failovers.items():
            totals[route] += count
        return {
            "peers": {site: s.doc(wall, mono) for site, s in sorted(self.peers.items())},
            "failovers": dict(sorted(totals.items())),
        }

    def wanted(self) -> dict[str, str]:
        """The peers to probe now: site id -> address."""
        table = self._table()
        if table is None:
            return {}
        cutoff = time.monotonic() - self.recent_s
        self._recent = {s: at for s, at in self._recent.items() if at >= cutoff}
        names = sorted(table.peer_sites()) + sorted(set(self._recent) - table.peer_sites())
        chosen = [s for s in names if s in table.sites and s != table.site][: self.max_peers]
        return {site: table.sites[site]["address"] for site in chosen}

    async def probe_once(self) -> None:
        """Probe every wanted peer once, concurrently, and update their state."""
        wanted = self.wanted()
        for gone in set(self.peers) - set(wanted):
            del self.peers[gone]
        results = await asyncio.gather(*(self._one(s, a) for s, a in wanted.items()))
        for (site, address), (ok, rtt) in zip(wanted.items(), results, strict=True):
            self._record(site, address, ok, rtt)

    async def _one(self, site: str, address: str) -> tuple[bool, float]:
        start = time.monotonic()
        try:
            host, port = split_address(address)
            ok = await self._probe(host, port, self.timeout_s)
        except ValueError:
            log.warning("peer address is not an IP address", extra={"site": site})
            ok = False
        return ok, (time.monotonic() - start) * 1000

    def _record(self, site: str, address: str, ok: bool, rtt_ms: float) -> None:
        state = self.peers.get(site)
        if state is None or state.address != address:
            state = self.peers[site] = PeerState(address)
        now = time.monotonic()
        if ok:
            state.misses, state.rtt_ms = 0, round(rtt_ms, 1)
            if state.up is not True:
                log.info("peer site up", extra={"site": site, "address": address})
                state.up, state.since = True, now
            return
        state.misses += 1
        state.rtt_ms = None
        if state.misses >= self.down_after and state.up is not False:
            log.warning("peer site down", extra={"site": site, "address": address})
            state.up, state.since = False, now

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.probe_once()
            except Exception:
                log.exception("peer probe round failed")
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.05, self.interval_s - elapsed))
