"""What the demo deploys: service configs, credentials and ports, as plain data.

Secrets (API tokens, SIP passwords) are generated once per demo directory and kept in
``secrets.json`` so a restarted demo keeps the credentials people already typed into a
softphone. Well-known ports (SIP, HTTP, ingest) are the ones of the last run when still
free, else the defaults, else any free loopback port; they are kept in ``ports.json`` so a
restarted demo keeps its addresses even while another demo holds the defaults.
"""

from __future__ import annotations

import json
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.demo import hotel
from drivers.daemon.private_files import write_private
from drivers.sync import keys

LOOPBACK = "127.0.0.1"
PREFERRED_PORTS = {
    "aggregator": 8800,
    "branch": 8080,
    "gateway": 8081,
    "branch-b": 8082,
    "hotel": 8083,
    "ingest": 5570,
    "sip": 5060,
    "sip-branch-b": 5062,
    "sip-gateway": 5064,
    "sip-hotel": 5066,
}
APPLIANCES = ("branch", "branch-b", "gateway", "hotel")
BRANCHES = ("branch", "branch-b")
DEMO_MODEMS = 4
BRANCH_EXTENSIONS = (("1001", "Reception"), ("1002", "Sales"), ("1003", "Support"))
BRANCH_B_EXTENSIONS = (("3001", "Front desk"), ("3002", "Warehouse"))
GATEWAY_EXTENSIONS = (("2001", "Gateway desk"),)
COMPLIANCE_BOUND = "1003"  # Support: its break-outs pass the site's compliance rules
SITE_NAMES = {"branch": "Branch A", "branch-b": "Branch B", "gateway": "SIM gateway",
              "hotel": "Hotel"}  # fmt: skip
# RTP ports lie above the kernel's ephemeral range (32768-60999), where no client socket of
# another process can take one rtpengine then cannot offer, and apart from the test suite's
# random ports (below 61000), since the suite runs beside a demo: 1,100 ports, about 130
# concurrent calls, per site.
RTP_RANGES = {"branch": (61000, 62099), "branch-b": (62100, 63199), "gateway": (63200, 64299),
              "hotel": (64300, 65399)}  # fmt: skip
# Helper ports (event and route sockets, rtpengine control) come from here: below the RTP
# ranges and the kernel's ephemeral range, so no client socket of another process can take
# one between planning and the helper binding it, and apart from the ranges the test suite
# draws its random ports from (15000-29999), since the suite runs beside a demo.
HELPER_PORTS = range(10000, 15000)
GSM_GROUP = "gsm"
# Front desk (3001) at branch B is an agent of branch A's queue too: a remote agent.
REMOTE_AGENT = "3001"
DEMO_QUEUE = {"number": "700", "overflow": "1002", "max_wait_s": 120,
              "agents": ["1001", "1003", {"extension": REMOTE_AGENT, "remote": True}]}  # fmt: skip
DEMO_AGENT_CODES = {"prompt": "agent-done", "login": "*71", "logout": "*72", "pause": "*73",
                    "resume": "*74", "reasons": {"1": "break", "2": "lunch"}}  # fmt: skip


@dataclass
class ServicePlan:
    """One service of the demo: how to start it and what it offers.

    A simulator is ready once it wrote ``ready_file``; ``published`` names the keys of that
    file the manifest repeats (e.g. its control URL). A ``background`` service is started
    without waiting for it, so it comes up while the next ones start; its health is
    awaited after theirs.
    """

    name: str
    kind: str
    port: int
    root: Path
    config: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)
    ready_file: Path | None = None
    modems_from: Path | None = None
    published: tuple[str, ...] = ()
    background: bool = False

    @property
    def config_path(self) -> Path:
        return self.root / f"{self.kind}.yaml"

    def command(self) -> list[str]:
        """The callmesh sub-command that runs this service."""
        if self.kind == "modem-simulator":
            return ["modem", "simulate", *self.config["args"]]
        if self.kind == "pms-simulator":
            return ["pms-simulator", *self.config["args"]]
        return [self.kind, "run", "--config", str(self.config_path)]

    def take_modems(self) -> None:
        """Point a gateway at the simulator's modems (read from its ports file)."""
        if self.modems_from is None:
            return
        ports = json.loads(self.modems_from.read_text())
        self.config["gateway"] = {
            "modems": [
                {"channel": f"gsm-{m['index'] + 1}", "port": m["at_by_id"], "imei": m["imei"]}
                for m in ports["modems"]
            ]
        }

    @property
    def log_path(self) -> Path:
        return self.root / "service.log"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def load_secrets(demo_dir: Path) -> dict[str, Any]:
    """The demo's tokens and passwords, created on first use (missing ones added later)."""
    path = demo_dir / "secrets.json"
    values: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    before = json.dumps(values, sort_keys=True)
    for name in ("aggregator", *APPLIANCES):
        values.setdefault(f"{name}_admin_token", secrets.token_urlsafe(24))
    values.setdefault("peering_secret", secrets.token_urlsafe(24))
    passwords = values.setdefault("sip_passwords", {})
    every = BRANCH_EXTENSIONS + BRANCH_B_EXTENSIONS + GATEWAY_EXTENSIONS + hotel.HOTEL_EXTENSIONS
    for number, _ in every:
        passwords.setdefault(number, secrets.token_urlsafe(12))
    if json.dumps(values, sort_keys=True) == before:
        return values
    write_private(path, json.dumps(values, indent=2))
    return values


def free_port(preferred: int, kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """``preferred`` if no socket of ``kind`` holds it on loopback, else a free port."""
    for candidate in (preferred, 0):
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                # As the servers themselves bind: a closed connection in TIME_WAIT is no owner.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((LOOPBACK, candidate))
            except OSError:
                continue
            port: int = sock.getsockname()[1]
            return port
    raise OSError(f"no free {kind.name} port on loopback")


class PortBook:
    """The demo's well-known ports: the last run's when free, else the defaults, else any."""

    def __init__(self, demo_dir: Path) -> None:
        self.path = demo_dir / "ports.json"
        self.kept: dict[str, int] = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.chosen: dict[str, int] = {}
        self.helpers: set[int] = set()

    def take(self, key: str, kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
        """A port for ``key``, remembered for the next run."""
        default = PREFERRED_PORTS[key]
        port = free_port(self.kept.get(key, default), kind)
        if port != self.kept.get(key, default):
            port = free_port(default, kind)
        self.chosen[key] = port
        return port

    def helper(self, kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
        """A free port of ``kind`` for a helper socket, none handed out twice in one plan."""
        for candidate in HELPER_PORTS:
            if candidate not in self.helpers and free_port(candidate, kind) == candidate:
                self.helpers.add(candidate)
                return candidate
        raise OSError(f"no free {kind.name} port on loopback in {HELPER_PORTS}")

    def save(self) -> None:
        self.path.write_text(json.dumps(self.chosen, indent=2, sort_keys=True))


def demo_keys(demo_dir: Path) -> dict[str, dict[str, str]]:
    """CurveZMQ keypairs of the aggregator and each appliance, created once."""
    key_dir = demo_dir / "keys"
    found = {}
    for name in ("aggregator", *(f"demo-{n}" for n in APPLIANCES)):
        secret = key_dir / f"{name}.key_secret"
        if not secret.exists():
            keys.generate(key_dir, name)
        found[name] = {"secret_file": str(secret), "public": keys.load_public(secret).decode()}
    return found


def plan_services(demo_dir: Path, public_ip: str = LOOPBACK) -> list[ServicePlan]:
    """Aggregator, the PMS simulator, the hotel (in the background), the two branch boxes,
    the simulated modems and the SIM gateway, in start order; every PBX takes SIP and RTP
    on ``public_ip`` (its control ports stay on loopback)."""
    creds = load_secrets(demo_dir)
    key_pairs = demo_keys(demo_dir)
    book = PortBook(demo_dir)
    aggregator = _aggregator(demo_dir, creds, key_pairs, book)
    link = {
        "enabled": True,
        "endpoint": aggregator.extras["ingest"],
        "server_public_key": key_pairs["aggregator"]["public"],
    }
    simulator = _modem_simulator(demo_dir)
    branch = _appliance(
        demo_dir, creds, "branch", "branch", BRANCH_EXTENSIONS, link, key_pairs, book
    )
    branch_b = _appliance(
        demo_dir, creds, "branch-b", "branch", BRANCH_B_EXTENSIONS, link, key_pairs, book
    )
    gateway = _appliance(
        demo_dir, creds, "gateway", "sim-gateway", GATEWAY_EXTENSIONS, link, key_pairs, book
    )
    gateway.modems_from = simulator.ready_file
    branch.config["compliance"] = {"extensions": {COMPLIANCE_BOUND: {}}}
    _contact_centre(branch, branch_b)
    pms = _pms_simulator(demo_dir, book)
    hotel_box = _appliance(
        demo_dir, creds, "hotel", "hotel", hotel.HOTEL_EXTENSIONS, link, key_pairs, book
    )
    _hotel(hotel_box, pms, creds["sip_passwords"])
    book.save()
    for box in (hotel_box, branch, branch_b, gateway):
        _advertise(box, public_ip)
    return [aggregator, pms, hotel_box, branch, branch_b, simulator, gateway]


def _advertise(plan: ServicePlan, address: str) -> None:
    """Phones and the other sites reach this PBX's SIP and RTP at ``address``."""
    pbx = plan.config["pbx"]
    pbx["sip_host"] = address
    plan.extras["sip"]["address"] = f"{address}:{pbx['sip_port']}"


def _pms_simulator(demo_dir: Path, book: PortBook) -> ServicePlan:
    """The hotel's PMS: the project's FIAS simulator, both its ports on loopback helpers."""
    root = demo_dir / "pms"
    ready = root / hotel.SIMULATOR_READY
    ready.unlink(missing_ok=True)
    fias_port, control_port = book.helper(), book.helper()
    args = hotel.simulator_args(root, fias_port, control_port)
    extras = {"fias": f"{LOOPBACK}:{fias_port}"}
    return ServicePlan("pms", "pms-simulator", control_port, root,
                       {"args": args, "data_dir": str(root)}, extras, ready_file=ready,
                       published=("control",))  # fmt: skip


def _hotel(plan: ServicePlan, pms: ServicePlan, passwords: dict[str, str]) -> None:
    """The hotel's rooms and PMS link; rooms may dial out (when a guest is in) like branch A."""
    fias_port = int(pms.extras["fias"].rsplit(":", 1)[1])
    plan.config["hotel"] = hotel.hotel_section(fias_port)
    numbers = [number for number, _ in hotel.HOTEL_EXTENSIONS]
    plan.config["pbx"]["dialplan"]["class_of_service"] = dict.fromkeys(numbers, "international")
    plan.extras["hotel"] = hotel.room_extras(passwords, pms.url)
    plan.background = True


def _contact_centre(branch: ServicePlan, branch_b: ServicePlan) -> None:
    """Branch A's queue: Reception and Support as agents, and Front desk at branch B, who
    logs in with branch B's codes; Sales when nobody answers."""
    branch.config["contact"] = {"queues": {"support": DEMO_QUEUE},
                                "agent_codes": DEMO_AGENT_CODES}  # fmt: skip
    base = "/api/v1/contact"
    branch.extras["contact"] = {
        "queues": {"support": DEMO_QUEUE},
        "live": f"{base}/queues",
        "agent_actions": [f"{base}/agents/{{extension}}/{a}"
                          for a in ("login", "logout", "pause", "resume")],
        "events": f"{base}/events",
        "feature_codes": DEMO_AGENT_CODES,  # pause: the code + a digit of its reasons
        "remote_agents": {REMOTE_AGENT: "branch-b"},
    }  # fmt: skip
    codes = {k: v for k, v in DEMO_AGENT_CODES.items() if k != "prompt"}
    branch_b.config["contact"] = {"agent_codes": {**codes, "queue_site": branch.config["site_id"]}}
    branch_b.extras["contact"] = {
        "queue_site": "branch",  # its extensions' agent codes work branch A's queues
        "feature_codes": codes,
    }


def free_port_run(count: int, first: int = 5080) -> int:
    """The first of ``count`` consecutive UDP ports free on loopback, from ``first`` up."""
    for base in range(first, 65000 - count, count):
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
        try:
            for offset, sock in enumerate(sockets):
                sock.bind((LOOPBACK, base + offset))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base
    raise OSError(f"no {count} consecutive free UDP ports on loopback")


def directory(plans: list[ServicePlan]) -> dict[str, Any]:
    """The company directory HQ gets: every site with a PBX, extensions dialled as they are.

    The gateway's GSM trunk group owns its SIMs' numbers; national numbers (0...) dialled
    at branch A or from a hotel room break out through it.
    """
    sites, trunks, rules = [], [], []
    for plan in plans:
        if plan.kind != "appliance" or "pbx" not in plan.config:
            continue
        numbers = [e["number"] for e in plan.config["sip"]["extensions"]]
        sites.append({
            "id": plan.config["site_id"], "name": SITE_NAMES[plan.name],
            "sip_address": plan.extras["sip"]["address"], "extensions": numbers,
        })  # fmt: skip
        if plan.modems_from is not None:
            ports = json.loads(plan.modems_from.read_text())
            owned = [sim["number"] for m in ports["modems"] for sim in m["sims"]]
            trunks.append({"id": GSM_GROUP, "site": plan.config["site_id"], "kind": "gsm",
                           "numbers": owned})  # fmt: skip
            rules.append({"id": "national", "prefix": "0", "min_length": 6,
                          "sites": ["demo-branch", "demo-hotel"],
                          "targets": [{"trunk": GSM_GROUP}]})  # fmt: skip
    return {"plan": {"flat": True, "site_prefix": ""}, "sites": sites, "trunks": trunks,
            "rules": rules}  # fmt: skip


def _pbx_ports(name: str, peering_secret: str, book: PortBook) -> dict[str, Any]:
    """An appliance's PBX: Kamailio on its preferred port when free, helpers on free ports.

    The gateway's GSM channels form one trunk group (one GSM worker bridges all four);
    calls arriving on its SIMs ring the gateway desk.

    Branch A also runs two media workers: an echo test (*43), meet-me rooms (*3 + room)
    and an IVR (``ivr-main``, where Sales forwards when busy): 1 for Reception, 2 for
    Support. The hotel runs one, for its wake-up calls.
    """
    low, high = RTP_RANGES[name]
    media: dict[str, Any] = {"workers": 0}
    dialplan: dict[str, Any] = {}
    gsm: dict[str, Any] = {}
    if name == "gateway":
        channels = [f"gsm-{i + 1}" for i in range(DEMO_MODEMS)]
        gsm = {"port_base": free_port_run(1, first=5120),
               "groups": [{"name": GSM_GROUP, "channels": channels}],
               "default_inbound": GATEWAY_EXTENSIONS[0][0]}  # fmt: skip
    if name == "branch":
        media = {
            "workers": 2,
            "port_base": free_port_run(2),
            "prompts": {
                "menu": {"tone_hz": 440, "on_ms": 400, "off_ms": 200, "seconds": 3},
                "agent-done": {"tone_hz": 1400, "seconds": 1.5},
            },
            "ivr": {
                "main": {"prompt": "menu", "options": {"1": "1001", "2": "1003"}, "default": "1001"}
            },
        }
        dialplan = {"forward": {"1002": {"busy": "ivr:main"}}}
    if name == "hotel":
        media = {"workers": 1, "port_base": book.helper(socket.SOCK_DGRAM)}
    return {
        "enabled": True,
        "sip_host": LOOPBACK,
        "sip_port": book.take("sip" if name == "branch" else f"sip-{name}", socket.SOCK_DGRAM),
        "evapi_port": book.helper(),
        "route_port": book.helper(),
        "rtpengine_ng_port": book.helper(socket.SOCK_DGRAM),
        "rtp_port_min": low,
        "rtp_port_max": high,
        "peering": {"secret": peering_secret},
        "media": media,
        "dialplan": dialplan,
        "gsm": gsm,
    }


def _modem_simulator(demo_dir: Path) -> ServicePlan:
    """Four dual-SIM Quectel EC25s on pty pairs, scripted over HTTP."""
    root = demo_dir / "modems"
    ports = root / "ports.json"
    ports.unlink(missing_ok=True)
    args = [
        "--profile",
        "quectel-ec25",
        "--count",
        str(DEMO_MODEMS),
        "--sims",
        "2",
        "--json",
        str(ports),
        "--dir",
        str(root / "by-id"),
        "--reset-seconds",
        "2",
    ]
    extras = {"ports": str(ports), "profile": "quectel-ec25"}
    return ServicePlan(
        "modems",
        "modem-simulator",
        0,
        root,
        {"args": args, "data_dir": str(root)},
        extras,
        ready_file=ports,
        published=("control", "modems"),
    )


def _aggregator(
    demo_dir: Path, creds: dict[str, Any], key_pairs: dict[str, dict[str, str]], book: PortBook
) -> ServicePlan:
    root = demo_dir / "aggregator"
    port = book.take("aggregator")
    ingest = f"tcp://{LOOPBACK}:{book.take('ingest')}"
    token = {"name": "demo-admin", "token": creds["aggregator_admin_token"], "role": "admin"}
    sites = [
        {"site_id": f"demo-{n}", "public_key": key_pairs[f"demo-{n}"]["public"]} for n in APPLIANCES
    ]
    config = {
        "data_dir": str(root / "data"),
        "http": {"host": LOOPBACK, "port": port},
        "api": {"tokens": [token]},
        "ingest": {
            "bind": ingest,
            "key_file": key_pairs["aggregator"]["secret_file"],
            "sites": sites,
        },
    }
    extras = {
        "api_tokens": [token],
        "ingest": ingest,
        "public_key": key_pairs["aggregator"]["public"],
        "api_docs": f"http://{LOOPBACK}:{port}/docs",
    }
    return ServicePlan("aggregator", "aggregator", port, root, config, extras)


def _appliance(
    demo_dir: Path,
    creds: dict[str, Any],
    name: str,
    profile: str,
    extensions: tuple[tuple[str, str], ...],
    link: dict[str, Any],
    key_pairs: dict[str, dict[str, str]],
    book: PortBook,
) -> ServicePlan:
    root = demo_dir / name
    port = book.take(name)
    token = {"name": "demo-admin", "token": creds[f"{name}_admin_token"], "role": "admin"}
    sip_exts = [
        {"number": number, "password": creds["sip_passwords"][number], "name": label}
        for number, label in extensions
    ]
    site_id = f"demo-{name}"
    config: dict[str, Any] = {
        "site_id": site_id,
        "profile": profile,
        "data_dir": str(root / "data"),
        "http": {"host": LOOPBACK, "port": port},
        "api": {"tokens": [token]},
        "sip": {"extensions": sip_exts},
        "sync": {**link, "key_file": key_pairs[site_id]["secret_file"]},
    }
    sip: dict[str, Any] = {"domain": "callmesh.local", "extensions": sip_exts}
    config["pbx"] = _pbx_ports(name, creds["peering_secret"], book)
    sip["address"] = f"{LOOPBACK}:{config['pbx']['sip_port']}"
    extras = {
        "site_id": config["site_id"],
        "profile": profile,
        "api_tokens": [token],
        "sip": sip,
        "public_key": key_pairs[site_id]["public"],
    }
    return ServicePlan(name, "appliance", port, root, config, extras)
