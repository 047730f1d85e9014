"""Three aggregator nodes and the sites, each in its own network namespace, on one bridge.

Topology (names unique per run: ``cmhq-<hex>-<role>``)::

    ns …-hub:   br0 (bridge only, no address)  ── p1 ── p2 ── p3 ── p9 (bridge ports)
    ns …-node1 … …-node3:  lo, eth0 10.78.0.<k>/24   one ``aggregator run`` each
    ns …-sites: lo, eth0 10.78.0.9/24                one ``appliance run`` per site

The nodes share one PostgreSQL server, reached through its unix socket (a socket file is
visible from every network namespace, a loopback address is not), one data directory
(the recordings store) and one server keypair. The test process itself stays in the
root namespace: it reads PostgreSQL over TCP and enters a namespace only for HTTP.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from pyroute2 import NetNS, netns

from appliance.store import Outbox, Store
from appliance.sync.recordings import register_recording
from drivers.net.component import NetworkComponent
from drivers.net.netlink import NetlinkDriver
from drivers.net.plan import Desired, Link
from drivers.sync import keys
from tests.integration.routing.sites import NsProcess, inside, wait_until
from tests.procs import write_yaml
from tests.sync_env import TOKEN, make_cdr

SUBNET = "10.78.0"
SITES_IP = f"{SUBNET}.9"
HTTP_PORT = 8800
INGEST_PORT = 5570
APP_TOKEN = "hq-netns-site-viewer-token"


@dataclass
class Node:
    """One aggregator node: its namespace, address and process."""

    index: int
    ns: str
    process: NsProcess

    @property
    def ip(self) -> str:
        return f"{SUBNET}.{self.index}"

    @property
    def ingest(self) -> str:
        return f"tcp://{self.ip}:{INGEST_PORT}"

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{HTTP_PORT}"


@dataclass
class NsSite:
    """One appliance in the sites' namespace, with its own HTTP port and data dir."""

    id: str
    root: Path
    http_port: int
    process: NsProcess

    @property
    def url(self) -> str:
        return f"http://{SITES_IP}:{self.http_port}"

    def sessions(self) -> list[str]:
        """The endpoint of each sync session the site opened, in order."""
        return re.findall(
            r"sync session up.*endpoint=(\S+)", self.process.log.read_text(errors="replace")
        )


class HqNetwork:
    """Namespaces, nodes and sites of one test; ``close`` removes every one of them."""

    def __init__(self, root: Path, db_socket_url: str, site_ids: list[str]) -> None:
        self.root = root
        self.db_url = db_socket_url
        prefix = f"cmhq-{secrets.token_hex(3)}"
        self.hub, self.sites_ns = f"{prefix}-hub", f"{prefix}-sites"
        self.nodes = [
            Node(k, f"{prefix}-node{k}", NsProcess(f"{prefix}-node{k}", [], root / f"node{k}.log"))
            for k in (1, 2, 3)
        ]
        self.sites = [
            NsSite(s, root / s, 8080 + i, NsProcess(self.sites_ns, [], root / f"{s}.log"))
            for i, s in enumerate(site_ids)
        ]
        self._created: list[str] = []

    # -- network -------------------------------------------------------------------------

    def build(self) -> None:
        """The bridge, one namespace per node and one for the sites, addresses applied."""
        netns.create(self.hub)
        self._created.append(self.hub)
        with NetNS(self.hub) as ipr:
            ipr.link("add", ifname="br0", kind="bridge")
            ipr.link("set", index=ipr.link_lookup(ifname="br0")[0], state="up")
        for index, ns in [(n.index, n.ns) for n in self.nodes] + [(9, self.sites_ns)]:
            self._attach(ns, index)

    def _attach(self, ns: str, index: int) -> None:
        netns.create(ns)
        self._created.append(ns)
        with NetNS(self.hub) as ipr:
            ipr.link("add", ifname=f"p{index}", kind="veth",
                     peer={"ifname": "eth0", "net_ns_fd": ns})  # fmt: skip
            port = ipr.link_lookup(ifname=f"p{index}")[0]
            ipr.link("set", index=port, master=ipr.link_lookup(ifname="br0")[0])
            ipr.link("set", index=port, state="up")
        desired = Desired(links=(Link("lo"), Link("eth0", addresses=(f"{SUBNET}.{index}/24",))))
        report = NetworkComponent(desired, NetlinkDriver(ns)).converge()
        assert report.ok, report.problems

    # -- configuration -------------------------------------------------------------------

    def write_configs(self) -> None:
        """One config per node (same keys, database, data dir) and one per site."""
        server_pub, _ = keys.generate(self.root / "hq" / "keys", "aggregator")
        admitted = []
        for site in self.sites:
            pub, _ = keys.generate(site.root / "keys", site.id)
            admitted.append({"site_id": site.id, "public_key": keys.load_public(pub).decode()})
        for node in self.nodes:
            write_yaml(self.root / f"node{node.index}.yaml", {
                "data_dir": str(self.root / "hq"),
                "database": {"url": self.db_url},
                "http": {"host": node.ip, "port": HTTP_PORT},
                "api": {"tokens": [{"name": "t", "token": TOKEN, "role": "admin"}]},
                "ingest": {"bind": node.ingest, "sites": admitted},
                "routing": {"push_interval_s": 0.5},
            })  # fmt: skip
        for i, site in enumerate(self.sites):
            order = [self.nodes[(i + k) % 3].ingest for k in range(3)]
            write_yaml(site.root / "appliance.yaml", self._site_config(site, order, server_pub))

    def _site_config(self, site: NsSite, endpoints: list[str], server_pub: Path) -> dict[str, Any]:
        return {
            "site_id": site.id,
            "profile": "branch",
            "data_dir": str(site.root),
            "http": {"host": SITES_IP, "port": site.http_port},
            "api": {"tokens": [{"name": "v", "token": APP_TOKEN, "role": "viewer"}]},
            "sync": {
                "enabled": True, "endpoints": endpoints,
                "server_public_key": keys.load_public(server_pub).decode(),
                "ack_timeout_s": 3, "hello_timeout_s": 3,
                "reconnect_min_s": 0.2, "reconnect_max_s": 1, "status_interval_s": 1,
            },
            "recordings": {"retention_days": 0, "min_free_mb": 0},
        }  # fmt: skip

    def fill_outboxes(self, cdrs: int, recordings: int, recording_bytes: int) -> None:
        """Queue ``cdrs`` CDRs numbered 0… and ``recordings`` random files at every site."""
        for site in self.sites:
            store = Store.open(site.root / "store")
            try:
                outbox = Outbox(store, "cdr")
                for first in range(0, cdrs, 5000):
                    outbox.append_many([make_cdr(n) for n in range(first, min(first + 5000, cdrs))])
                folder = site.root / "recordings"
                folder.mkdir(parents=True, exist_ok=True)
                for r in range(recordings):
                    wav = folder / f"r{r}.wav"
                    wav.write_bytes(secrets.token_bytes(recording_bytes))
                    meta = {"cdr_id": f"c-{site.id}-{r}"}
                    register_recording(Outbox(store, "recording"), f"r{r}", wav, meta)
            finally:
                store.close()

    # -- processes -----------------------------------------------------------------------

    def start_nodes(self) -> None:
        for node in self.nodes:
            config = str(self.root / f"node{node.index}.yaml")
            node.process.args = [*_cli(), "aggregator", "run", "--config", config]
            node.process.start()
        for node in self.nodes:
            self.wait_healthy(node.ns, f"{node.url}/healthz", node.process)

    def start_sites(self) -> None:
        for site in self.sites:
            config = str(site.root / "appliance.yaml")
            site.process.args = [*_cli(), "appliance", "run", "--config", config]
            site.process.start()
        for site in self.sites:
            self.wait_healthy(self.sites_ns, f"{site.url}/healthz", site.process)

    @staticmethod
    def wait_healthy(ns: str, url: str, process: NsProcess) -> None:
        wait_until(lambda: _get(ns, url).status_code == 200, 60, process.output)

    def node_at(self, endpoint: str) -> Node:
        return next(n for n in self.nodes if n.ingest == endpoint)

    def close(self) -> None:
        """Stop every process, then remove every namespace (also after a failure)."""
        for process in [s.process for s in self.sites] + [n.process for n in self.nodes]:
            with contextlib.suppress(OSError):
                process.stop()
        for name in reversed(self._created):
            with contextlib.suppress(OSError):
                netns.remove(name)

    # -- probes --------------------------------------------------------------------------

    def hq(self, node: Node, method: str, path: str, body: Any = None) -> httpx.Response:
        """An admin API call to ``node`` from inside its namespace."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with inside(node.ns):
            return httpx.request(method, f"{node.url}{path}", json=body, headers=headers,
                                 timeout=10)  # fmt: skip

    def site_get(self, site: NsSite, path: str) -> httpx.Response:
        return _get(self.sites_ns, f"{site.url}{path}", APP_TOKEN)

    def pending(self, site: NsSite) -> int:
        """CDRs still in the site's outbox (its /metrics)."""
        text = self.site_get(site, "/metrics").text
        found = re.search(r'callmesh_outbox_pending\{outbox="cdr"\} ([0-9.e+]+)', text)
        assert found, "no outbox metric"
        return int(float(found.group(1)))

    def metric(self, site: NsSite, name: str) -> float:
        text = self.site_get(site, "/metrics").text
        found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
        return float(found.group(1)) if found else 0.0


def socket_url(tcp_url: str, database: str) -> str:
    """The URL of ``database`` on the server at ``tcp_url``, through its unix socket."""
    engine = sa.create_engine(tcp_url)
    try:
        with engine.connect() as conn:
            folder = str(conn.scalar(sa.text("SELECT current_setting('unix_socket_directories')")))
    finally:
        engine.dispose()
    url = sa.make_url(tcp_url)
    return f"postgresql+psycopg://{url.username}@/{database}?host={folder}&port={url.port}"


def _get(ns: str, url: str, token: str = TOKEN) -> httpx.Response:
    with inside(ns):
        return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)


def _cli() -> list[str]:
    return [sys.executable, "-m", "appliance.cli.main"]
