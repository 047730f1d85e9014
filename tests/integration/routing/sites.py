"""Several sites, each in its own network namespace, joined by a bridge; HQ on the bridge.

Topology (names unique per run: ``cm7-<hex>-<role>``)::

    ns cm7-…-hub:  br0 10.77.0.254/24 (HQ listens here)  ── v1 ── v2 ── v3 (bridge ports)
    ns cm7-…-<site i>:  lo, wan0 10.77.0.<i>/24 (the veth peer of v<i>)

Sites run the real appliance (Kamailio, rtpengine, routing, sync) through
``ip netns exec``; addresses are applied with the appliance's own pyroute2 driver.
Cutting a site's link sets its bridge port down. Traffic never leaves these namespaces.
HTTP from the test process enters a namespace with pyroute2's ``pushns``/``popns``.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pyroute2 import NetNS, netns

from appliance.store import StateStore, Store
from drivers.net.component import NetworkComponent
from drivers.net.netlink import NetlinkDriver
from drivers.net.plan import Desired, Link
from drivers.sync import keys
from tests.procs import ROOT, write_yaml

SUBNET = "10.77.0"
HQ_IP = f"{SUBNET}.254"
HQ_HTTP = 8800
HQ_INGEST = 5570
TOKEN = "multi-site-admin-token-0123"
PEER_SECRET = "inter-site-secret-for-tests"
TRUNK_PORT = 5090


@contextlib.contextmanager
def inside(ns: str) -> Iterator[None]:
    """Run the block's new sockets inside network namespace ``ns``."""
    netns.pushns(ns)
    try:
        yield
    finally:
        netns.popns()


def get_json(ns: str, url: str, token: str = TOKEN) -> Any:
    """GET ``url`` from inside ``ns`` (bearer token), as JSON."""
    with inside(ns):
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    response.raise_for_status()
    return response.json()


def wait_until(ready: Callable[[], bool], timeout: float, why: Callable[[], str]) -> None:
    """Poll ``ready`` until true or fail after ``timeout`` seconds with ``why()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if ready():
                return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s\n{why()}")


class NsProcess:
    """A process inside a namespace, logging to a file; stopped with SIGTERM, then killed."""

    def __init__(self, ns: str, args: list[str], log: Path) -> None:
        self.ns, self.args, self.log = ns, args, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, *self.args],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""


@dataclass
class Site:
    """One appliance in its namespace."""

    id: str
    index: int
    ns: str
    root: Path
    extensions: dict[str, str]
    trunk: str | None = None
    process: NsProcess | None = None
    sip_port: int = 5060
    public_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ip(self) -> str:
        return f"{SUBNET}.{self.index}"

    @property
    def domain(self) -> str:
        return f"{self.id}.test"

    @property
    def url(self) -> str:
        return f"http://{self.ip}:8080"

    def output(self) -> str:
        text = self.process.output() if self.process else ""
        kamailio = self.root / "pbx" / "run" / "kamailio.log"
        if kamailio.exists():
            text += "\n--- kamailio.log tail ---\n" + kamailio.read_text(errors="replace")[-4000:]
        return text

    def metrics(self) -> str:
        with inside(self.ns):
            return httpx.get(f"{self.url}/metrics", timeout=5).text

    def cdrs(self) -> list[dict[str, Any]]:
        """The site's local CDR index (the outbox drains to HQ)."""
        store = Store.open(self.root / "store", 64)
        try:
            return [doc for _, doc in StateStore(store, "pbx-cdr").items()]
        finally:
            store.close()

    def cdr(self, match: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def ready() -> bool:
            found[:] = [c for c in self.cdrs() if match(c)]
            return bool(found)

        wait_until(ready, timeout, lambda: f"CDRs at {self.id}: {self.cdrs()}\n{self.output()}")
        return found[-1]


class Company:
    """The namespaces, HQ and the sites of one test module; ``close`` removes everything."""

    def __init__(self, root: Path, sites: list[Site]) -> None:
        self.root = root
        self.prefix = f"cm7-{secrets.token_hex(3)}"
        self.hub = f"{self.prefix}-hub"
        self.sites = {s.id: s for s in sites}
        self.hq = NsProcess(self.hub, [], root / "hq.log")
        self._created: list[str] = []

    # -- network -------------------------------------------------------------------------

    def build_network(self) -> None:
        netns.create(self.hub)
        self._created.append(self.hub)
        with NetNS(self.hub) as ipr:
            ipr.link("add", ifname="br0", kind="bridge")
            bridge = ipr.link_lookup(ifname="br0")[0]
            ipr.addr("add", index=bridge, address=HQ_IP, prefixlen=24)
            ipr.link("set", index=bridge, state="up")
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        for site in self.sites.values():
            netns.create(site.ns)
            self._created.append(site.ns)
            with NetNS(self.hub) as ipr:
                ipr.link("add", ifname=f"v{site.index}", kind="veth",
                         peer={"ifname": "wan0", "net_ns_fd": site.ns})  # fmt: skip
                port = ipr.link_lookup(ifname=f"v{site.index}")[0]
                ipr.link("set", index=port, master=ipr.link_lookup(ifname="br0")[0])
                ipr.link("set", index=port, state="up")
            desired = Desired(links=(Link("lo"), Link("wan0", addresses=(f"{site.ip}/24",))))
            report = NetworkComponent(desired, NetlinkDriver(site.ns)).converge()
            assert report.ok, report.problems

    def set_link(self, site_id: str, up: bool) -> None:
        """Bring a site's bridge port up or down (its cable, as seen from the company)."""
        with NetNS(self.hub) as ipr:
            port = ipr.link_lookup(ifname=f"v{self.sites[site_id].index}")[0]
            ipr.link("set", index=port, state="up" if up else "down")

    # -- configuration -------------------------------------------------------------------

    def write_configs(self, directory_doc: dict[str, Any]) -> Path:
        agg_pub, _ = keys.generate(self.root / "hq" / "keys", "aggregator")
        site_keys = []
        for site in self.sites.values():
            pub, _ = keys.generate(site.root / "keys", site.id)
            site_keys.append({"site_id": site.id, "public_key": keys.load_public(pub).decode()})
            write_yaml(site.root / "appliance.yaml", self._site_config(site, agg_pub))
        write_yaml(self.root / "hq.yaml", {
            "data_dir": str(self.root / "hq"),
            "http": {"host": HQ_IP, "port": HQ_HTTP},
            "api": {"tokens": [{"name": "t", "token": TOKEN, "role": "admin"}]},
            "ingest": {"bind": f"tcp://{HQ_IP}:{HQ_INGEST}", "sites": site_keys},
        })  # fmt: skip
        return write_yaml(self.root / "directory.yaml", directory_doc)

    def _site_config(self, site: Site, agg_pub: Path) -> dict[str, Any]:
        trunks = [{"name": site.trunk, "host": site.ip, "port": TRUNK_PORT}] if site.trunk else []
        return {
            "site_id": site.id,
            "profile": "branch",
            "data_dir": str(site.root),
            "http": {"host": site.ip, "port": 8080},
            "api": {"tokens": [{"name": "t", "token": TOKEN, "role": "admin"}]},
            "sip": {"domain": site.domain, "extensions": [
                {"number": n, "password": f"secret-{n}-pw", "name": name}
                for n, name in site.extensions.items()
            ]},
            "pbx": {
                "enabled": True, "sip_host": site.ip, "kamailio_children": 2,
                "rtpengine_threads": 1, "rtp_port_min": 30000, "rtp_port_max": 30199,
                "no_answer_s": 10,
                "pike_exempt": [s.ip for s in self.sites.values()],
                "peering": {"secret": PEER_SECRET, "hop_timer_ms": 1000},
                "dialplan": {"trunks": trunks},
            },
            "sync": {
                "enabled": True, "endpoint": f"tcp://{HQ_IP}:{HQ_INGEST}",
                "server_public_key": keys.load_public(agg_pub).decode(),
                "ack_timeout_s": 3, "reconnect_min_s": 0.2, "reconnect_max_s": 1,
                "status_interval_s": 1,
            },
            "recordings": {"retention_days": 0, "min_free_mb": 0},
            **site.extra,
        }  # fmt: skip

    # -- processes -----------------------------------------------------------------------

    def start_hq(self) -> None:
        cli = [sys.executable, "-m", "appliance.cli.main"]
        self.hq.args = [*cli, "aggregator", "run", "--config", str(self.root / "hq.yaml")]
        self.hq.start()
        wait_until(
            lambda: get_json(self.hub, f"{self.hq_url}/healthz") is not None,
            30, self.hq.output,
        )  # fmt: skip

    @property
    def hq_url(self) -> str:
        return f"http://{HQ_IP}:{HQ_HTTP}"

    def put_directory(self, doc: dict[str, Any]) -> None:
        with inside(self.hub):
            headers = {"Authorization": f"Bearer {TOKEN}"}
            url = f"{self.hq_url}/api/v1/directory"
            response = httpx.put(url, json=doc, headers=headers, timeout=10)
        assert response.status_code == 200, response.text

    def start_site(self, site: Site) -> None:
        cli = [sys.executable, "-m", "appliance.cli.main", "appliance", "run"]
        config = str(site.root / "appliance.yaml")
        site.process = NsProcess(site.ns, [*cli, "--config", config], site.root / "appliance.log")
        site.process.start()
        wait_until(lambda: get_json(site.ns, f"{site.url}/healthz") is not None, 40, site.output)

    def close(self) -> None:
        for site in self.sites.values():
            if site.process is not None:
                site.process.stop()
        self.hq.stop()
        for name in reversed(self._created):
            with contextlib.suppress(OSError):
                netns.remove(name)


def routing_version(site: Site) -> int:
    """The routing table version a site runs (its /metrics)."""
    for line in site.metrics().splitlines():
        if line.startswith("callmesh_routing_version "):
            return int(float(line.split()[1]))
    return 0
