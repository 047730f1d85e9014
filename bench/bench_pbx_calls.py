"""PBX load: sipp UAC -> Kamailio -> sipp UAS with RTP, relayed and recorded, vs proxy only.

Runs the same call load twice (three times with ``--baseline``) on loopback: once through
the full PBX (Kamailio, rtpengine anchoring and recording every call, the appliance turning
events into CDRs and pcaps into WAVs) and once through the PBX with no media relay (proxy
only). Reports failures, the setup rate, CPU (cores, split between the appliance's Python
process, Kamailio and rtpengine) and PSS per concurrent call, and the ratio between the two.

    .venv/bin/python bench/bench_pbx_calls.py --rate 50 --hold 4 --calls 1000

After the table it prints PSS per part, idle (before the first call) and steady (the
daemons at their peak, the appliance as the last call is placed): the appliance with its
children (the WAV conversion worker), the appliance's own process alone ("appliance
main"), Kamailio and rtpengine, each with all its processes.

Every run also tells what became of each call and whether anything was left half set
up: calls answered, calls refused with 503 and a Retry-After (the UAC takes that as an
outcome, not a failure) and other failures, each held against the appliance's CDRs (one
right CDR per answered call; none or the shed one per refused call, ``bench/pbx_outcomes.py``),
and the dialogs Kamailio and the calls rtpengine still hold once the calls have ended.
``--max-calls N`` sets the edge's ``pbx.max_calls``; offered above it, the run shows the
load shedding, e.g. 600 concurrent offered against a cap of 400:

    .venv/bin/python bench/bench_pbx_calls.py --rate 100 --hold 6 --calls 1200 --max-calls 400

``--baseline`` adds a third run of the same load, recorded, through Kamailio with a minimal
script (``bench/kamailio_baseline.cfg.tmpl``: registrar, digest auth, rtpengine offer and
answer with recording; no appliance, evapi, route query or dialog module) and rtpengine
under the product's drivers (``bench/pbx_baseline.py``), and prints our recorded edge
against it. Its WAVs column counts the recordings rtpengine finished (it converts none);
it has no cap (``--max-calls`` does not apply to it).

``--keep DIR`` keeps each run's work folder under DIR (which must not exist yet; one
folder per mode, path and route server): sipp's statistics and per-call logs
(``uac-outcomes.log``, ``uac-errors.log``, ``uas.log``), the appliance's log (``pbx.log``)
and Kamailio's (``data/pbx/run/kamailio.log``).

``--path trunk`` has the phone (1001) break out through an outbound route
(``0301234567`` → ``+49301234567``) to a SIP trunk played by the sipp UAS; ``--path
did`` has the sipp UAC play a trunk calling a DID routed to 1002 (no digest: trusted
by source address and port); the default, ``extension``, calls 1002 directly.
``--route-server`` runs each mode a second time with the trunk routes turned off
(a pass-through decider that does not declare ``keeps_trunk_calls``), so every trunk
or DID call asks the appliance's routing chain, as before they were rendered into
Kamailio: the two side by side in one run.

    .venv/bin/python bench/bench_pbx_calls.py --path trunk --route-server --calls 600

``--proxy-only`` runs the proxy-only mode alone (its CPU is the signalling path's cost,
e.g. the 600-call figure: ``--proxy-only --rate 100 --hold 6 --calls 3000``).
Runs with media also time rtpengine's control link: an ng ``ping`` every 100 ms from
the UAC's start to its end (``bench/ng_probe.py``: median, p99, max and how many took
over 100 ms, 500 ms and 1 s, Kamailio's ``rtpengine_tout_ms``). Every run reports how
long each part's threads waited for a CPU in the steady phase (``/proc/*/task/*/schedstat``,
thread-seconds per second): a relay that answers late on a saturated machine shows it
there. ``--recorded-only`` skips the proxy-only run, to alternate recorded runs of two
trees in one session.

``--profile DIR`` also writes a cProfile of the appliance process per mode into DIR
(``python -m pstats``); its overhead slows the appliance, so its CPU figures are not
comparable with a run without it.

Needs the Debian packages kamailio, kamailio-extra-modules, rtpengine-daemon, sip-tester.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import cProfile
import logging
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness, pbx_baseline  # noqa: E402
from bench.ng_probe import NgProbe  # noqa: E402
from bench.pbx_outcomes import UacOutcomes, check_cdrs, counts, parse_uac_log, summary  # noqa: E402

PASSWORD = "bench-password-1"
PBX_START_S = 30
LEFTOVERS_S = 15
REGISTER_S = 20
SIPP_GRACE_S = 30
CPU_PARTS = ("appliance", "kamailio", "rtpengine")

UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench uac">
<send retrans="500"><![CDATA[
INVITE sip:CALLEE@bench.local SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:1001@bench.local>;tag=[call_number]
To: <sip:CALLEE@bench.local>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:1001@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [auto_media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
<recv response="100" optional="true"/>
<recv response="407" auth="true"/>
<send><![CDATA[
ACK sip:CALLEE@bench.local SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-1]
From: <sip:1001@bench.local>;tag=[call_number]
To: <sip:CALLEE@bench.local>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
<send retrans="500"><![CDATA[
INVITE sip:CALLEE@bench.local SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:1001@bench.local>;tag=[call_number]
To: <sip:CALLEE@bench.local>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:1001@[local_ip]:[local_port]>
[authentication username=1001 password=PASSWORD]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 2 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [auto_media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
<recv response="100" optional="true"/>
<recv response="180" optional="true"/>
<recv response="503" optional="true" next="refused">
  <action>
    <ereg regexp="[0-9]+" search_in="hdr" header="Retry-After:" check_it="true" assign_to="retry"/>
  </action>
</recv>
<recv response="200" rrs="true" rtd="true"/>
<send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <sip:1001@bench.local>;tag=[call_number]
To: <sip:CALLEE@bench.local>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
<nop><action><exec rtp_stream="TONE,-1,0"/></action></nop>
<pause/>
<send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <sip:1001@bench.local>;tag=[call_number]
To: <sip:CALLEE@bench.local>[peer_tag_param]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="200" crlf="true"/>
<nop next="end"><action><log message="answered [call_id]"/></action></nop>
<label id="refused"/>
<send><![CDATA[
ACK sip:CALLEE@bench.local SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-1]
From: <sip:1001@bench.local>;tag=[call_number]
To: <sip:CALLEE@bench.local>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
<nop><action><log message="refused [call_id] [$retry]"/></action></nop>
<label id="end"/>
</scenario>
"""


def as_trunk(uac: str) -> str:
    """The UAC scenario as a trunk places the call: its authenticated INVITE alone, without
    the credentials (a trunk is trusted by source address and port), from the carrier."""
    head = uac[: uac.index('<send retrans="500">')]
    body = uac[uac.index('<send retrans="500">', uac.index('<recv response="407"')) :]
    body = body.replace("[authentication username=1001 password=PASSWORD]\n", "")
    body = body.replace("CSeq: 2 ", "CSeq: 1 ").replace("CSeq: 3 ", "CSeq: 2 ")
    body = body.replace("<sip:1001@[local_ip]", "<sip:carrier@[local_ip]")
    return head + body.replace("sip:1001@bench.local", "sip:+4917012345@carrier.example")


# The route each --path takes, and the number the UAC dials.
OWNED = "+4930555000"
CALLEE = {"extension": "1002", "trunk": "0301234567", "did": OWNED}

UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench uas">
<recv request="INVITE" crlf="true" rrs="true"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=[pid]u[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:1002@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [auto_media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
<recv request="ACK" crlf="true"/>
<nop><action><exec rtp_stream="TONE,-1,0"/></action></nop>
<recv request="BYE"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""

REGISTER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench register">
<send retrans="500"><![CDATA[
REGISTER sip:bench.local SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:1002@bench.local>;tag=r[call_number]
To: <sip:1002@bench.local>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:1002@127.0.0.1:UAS_PORT>
Expires: 3600
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="401" auth="true"/>
<send retrans="500"><![CDATA[
REGISTER sip:bench.local SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:1002@bench.local>;tag=r[call_number]
To: <sip:1002@bench.local>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:1002@127.0.0.1:UAS_PORT>
[authentication username=1002 password=PASSWORD]
Expires: 3600
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="200"/>
</scenario>
"""


def _free_port() -> int:
    return random.randrange(27000, 32000, 7)


def _tone_file(path: Path) -> None:
    from drivers.sip.recording import ULAW

    codes = {}
    out = bytearray()
    for n in range(8000):
        value = round(6000 * math.sin(2 * math.pi * 800 * n / 8000))
        if value not in codes:
            codes[value] = min(range(256), key=lambda c, v=value: abs(ULAW[c] - v))
        out.append(codes[value])
    path.write_bytes(bytes(out))


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry)) == pgid:
                    pids.append(int(entry))
    return pids


def _children(parent: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == parent:
                    kids.append(int(entry))
    return kids


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total


def cpu_wait_ns(pids: list[int]) -> int:
    """Nanoseconds the threads of ``pids`` spent runnable but waiting for a CPU (schedstat)."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[1])
    return total


def pss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
            total += int(match.group(1)) if match else 0
    return total


class Run:
    """One PBX (recorded or proxy only) under load."""

    def __init__(
        self,
        work: Path,
        anchor_media: bool,
        media_workers: int = 0,
        max_calls: int = 0,
        baseline: bool = False,
        route_server: bool = False,
    ) -> None:
        self.work = work
        self.anchor_media = anchor_media
        self.baseline = baseline
        self.sip_port = _free_port()
        self.uas_port = _free_port() + 3
        self.uac_port = _free_port() + 8
        self.evapi_port = _free_port() + 1
        self.ng_port = _free_port() + 2
        # 15000-26999: below the kernel's ephemeral ports (32768 up), which sipp's per-call RTP
        # sockets and every client socket take, below the ports _free_port hands out and above
        # the demo's helper ports. At 800 calls a range among them ran rtpengine out of ports
        # ("Address already in use"), and 6,000 ports ran out at the end of a run.
        rtp = 15000
        config = {
            "site_id": "bench",
            "profile": "branch",
            "data_dir": str(work / "data"),
            "sip": {
                "domain": "bench.local",
                "extensions": [
                    {"number": "1001", "password": PASSWORD},
                    {"number": "1002", "password": PASSWORD},
                ],
            },
            "pbx": {
                "sip_port": self.sip_port,
                "evapi_port": self.evapi_port,
                "rtpengine_ng_port": self.ng_port,
                "route_port": _free_port() + 11,
                "rtp_port_min": rtp,
                "rtp_port_max": rtp + 11999,
                "pike_exempt": ["127.0.0.1"],
                "anchor_media": anchor_media,
                "media": {"workers": media_workers, "port_base": _free_port()},
                "max_calls": max_calls,
                "dialplan": self.dialplan(),
            },
            "bench_route_server": route_server,
        }
        self.config = work / "appliance.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.procs: list[subprocess.Popen[bytes]] = []

    def dialplan(self) -> dict[str, Any]:
        """``--path trunk``: 0301234567 through the UAS as trunk ``carrier``; ``--path did``:
        the UAC as trunk ``carrier-in`` calling the DID, routed to 1002."""
        return {
            "owned_numbers": [OWNED],
            "trunks": [{"name": "carrier", "host": "127.0.0.1", "port": self.uas_port},
                       {"name": "carrier-in", "host": "127.0.0.1", "port": self.uac_port}],
            "outbound": [{"name": "national", "pattern": "0Z.", "trunk": "carrier", "strip": 1,
                          "prepend": "+49", "caller_id": OWNED}],
            "inbound": [{"did": OWNED, "target": "1002"}],
        }  # fmt: skip

    def spawn(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        proc = harness.spawn(argv, self.work / log, cwd=self.work)
        self.procs.append(proc)
        return proc

    def start_pbx(self, profile: Path | None = None) -> subprocess.Popen[bytes]:
        serve = "--serve-baseline" if self.baseline else "--serve"
        argv = [sys.executable, __file__, serve, str(self.config)]
        if profile is not None:
            argv += ["--profile", str(profile)]
        pbx = self.spawn(argv, "pbx.log")
        log = self.work / "pbx.log"

        def ready() -> bool:
            if pbx.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise harness.Incomplete(f"the PBX exited {pbx.returncode} while starting: {tail}")
            return "ready components" in log.read_text(errors="replace")

        harness.wait_until(ready, PBX_START_S, "PBX start")
        return pbx

    def daemon_groups(self) -> dict[str, list[int]]:
        run = self.work / "data" / "pbx" / "run"
        groups = {}
        for name in ("kamailio", "rtpengine"):
            pid_file = run / f"{name}.pid"
            if pid_file.exists():
                groups[name] = _group_pids(os.getpgid(int(pid_file.read_text().split()[0])))
        return groups

    def close(self) -> None:
        """Stop sipp and the PBX, then whatever is left of the daemons the PBX started."""
        daemons: list[int] = []
        with contextlib.suppress(OSError, ValueError):
            daemons = [os.getpgid(pids[0]) for pids in self.daemon_groups().values() if pids]
        for proc in reversed(self.procs):
            harness.stop(proc)
        for pgid in daemons:
            harness.kill_group(pgid)


def check_steady_phase(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """CPU and PSS are taken while every call is up: placing the calls must outlast a hold."""
    if args.calls / args.rate <= args.hold + 1:
        parser.error("no steady phase to measure: --calls / --rate must exceed --hold + 1 s")


def sipp_timeout_s(args: argparse.Namespace) -> int:
    """sipp's own limit for the whole run: every call placed and held, plus a minute."""
    return int(args.calls / args.rate + args.hold + 60)


def wait_uac(
    uac: subprocess.Popen[bytes], args: argparse.Namespace, work: Path, what: str, started: float
) -> None:
    """Wait for the sipp UAC started at ``started`` (its own limit and a grace); on timeout
    keep its last figures."""
    try:
        harness.wait_exit(
            uac, sipp_timeout_s(args) + SIPP_GRACE_S, f"sipp UAC ({what})", since=started
        )
    except harness.Incomplete:
        with contextlib.suppress(OSError, IndexError):
            stats = _stat(work, "uac.csv")
            harness.record(f"{what}, sipp when stopped", ", ".join(
                f"{key} {stats.get(key, '?')}" for key in
                ("ElapsedTime(C)", "CallRate(C)", "TotalCallCreated", "CurrentCall",
                 "SuccessfulCall(C)", "FailedCall(C)")))  # fmt: skip
        raise


def uac_argv(
    args: argparse.Namespace, target: str, scenario: str, name: str = "uac", port: int = 0
) -> list[str]:
    """sipp placing ``args.calls`` calls at ``args.rate``/s, each held ``args.hold`` s, from
    ``port`` (any free one when 0); its statistics in ``<name>.csv``, its outcomes in
    ``<name>-outcomes.log``."""
    return [
        "sipp", target, "-sf", scenario,
        "-i", "127.0.0.1", "-p", str(port or _free_port() + 8), "-mp", str(_free_port() + 9),
        "-cp", str(_free_port() + 10), "-r", str(args.rate), "-m", str(args.calls),
        "-l", str(int(args.rate * args.hold * 1.5)), "-d", str(int(args.hold * 1000)),
        "-nostdin", "-max_socket", "4096", "-trace_stat", "-stf", f"{name}.csv",
        "-fd", "1", "-timeout", str(sipp_timeout_s(args)),
        "-trace_logs", "-log_file", f"{name}-outcomes.log",
        "-trace_err", "-error_file", f"{name}-errors.log",
    ]  # fmt: skip


def _audio_seconds(folder: Path, sample: int = 40) -> float:
    """Mean seconds of non-silent audio per channel over up to ``sample`` WAVs."""
    paths = sorted(folder.glob("*.wav"))[:sample]
    total = 0.0
    for path in paths:
        with wave.open(str(path)) as wav:
            samples = array.array("h", wav.readframes(wav.getnframes()))
        total += sum(1 for x in samples if x) / 2 / 8000
    return total / max(1, len(paths))


def _scenario(work: Path, name: str, text: str, **values: str) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    path = work / f"{name}.xml"
    path.write_text(text)
    return str(path)


def _stat(work: Path, name: str) -> dict[str, str]:
    """The last line of a sipp statistics file; :class:`harness.Incomplete` if sipp wrote none."""
    path = work / name
    if not path.exists():
        raise harness.Incomplete(f"sipp wrote no statistics ({name})")
    lines = path.read_text().strip().splitlines()
    header, last = lines[0].split(";"), lines[-1].split(";")
    return dict(zip(header, last, strict=False))


def register(work: Path, target: str, values: dict[str, str]) -> None:
    """REGISTER 1002 at the UAS's address, once, bounded."""
    argv = ["sipp", target, "-sf", _scenario(work, "reg", REGISTER, **values), "-m", "1",
            "-i", "127.0.0.1", "-p", str(_free_port() + 4), "-cp", str(_free_port() + 5),
            "-nostdin", "-timeout", "10s"]  # fmt: skip
    reg = harness.spawn(argv, work / "reg.log", cwd=work)
    if harness.wait_exit(reg, REGISTER_S, "REGISTER") != 0:
        tail = (work / "reg.log").read_text(errors="replace")[-2000:]
        raise harness.Incomplete(f"REGISTER failed: {tail}")


def uac_outcomes(work: Path, name: str = "uac") -> UacOutcomes:
    """What the UAC ``name`` logged per call (empty if it logged nothing)."""
    path = work / f"{name}-outcomes.log"
    return parse_uac_log(path.read_text(errors="replace").splitlines() if path.exists() else [])


async def _leftovers(run: Run) -> tuple[int | None, int | None]:
    """Dialogs Kamailio holds (``dlg.stats_active``; None for the baseline, which has no
    dialog module) and rtpengine's calls (ng ``list``; None without media), polled until
    both are zero or LEFTOVERS_S has passed."""
    from drivers.sip.evapi import EvapiClient
    from drivers.sip.ng import NgClient

    kamailio = None if run.baseline else EvapiClient("127.0.0.1", run.evapi_port)
    try:
        if kamailio is not None:
            kamailio.start()
            await asyncio.wait_for(kamailio.connected.wait(), harness.limit(LEFTOVERS_S))
        deadline = time.monotonic() + harness.limit(LEFTOVERS_S)
        while True:
            dialogs = sessions = None
            if kamailio is not None:
                dialogs = int((await kamailio.rpc("dlg.stats_active"))["all"])
            if run.anchor_media:
                listed = await NgClient("127.0.0.1", run.ng_port).command("list", limit=100000)
                sessions = len(listed.get("calls", []))
            if not (dialogs or sessions) or time.monotonic() > deadline:
                return dialogs, sessions
            await asyncio.sleep(0.5)
    finally:
        if kamailio is not None:
            await kamailio.stop()


def edge_leftovers(run: Run) -> tuple[int | None, int | None]:
    """Dialogs and rtpengine calls still held after the last call ended (bounded)."""
    try:
        return asyncio.run(_leftovers(run))
    except TimeoutError:
        raise harness.Incomplete("could not connect to Kamailio's evapi to count dialogs") from None


def read_cdrs(store_dir: Path) -> list[dict[str, Any]]:
    """Every CDR in the stopped appliance's outbox."""
    import msgpack

    from appliance.store import Outbox, Store

    store = Store.open(store_dir, 512)
    try:
        outbox, cdrs, after = Outbox(store, "cdr"), [], 0
        while batch := outbox.read_batch(after, limit=5000):
            cdrs += [msgpack.unpackb(payload, raw=False) for _, payload in batch]
            after = batch[-1][0]
        return cdrs
    finally:
        store.close()


def drain_limit_s(args: argparse.Namespace) -> float:
    """How long the WAVs may take after the last call: a minute, plus 50 ms per call."""
    return 60 + args.calls * 0.05


PROXY_ONLY, RECORDED, BASELINE = "proxy only", "recorded", "raw baseline (recorded)"


def run_load(
    args: argparse.Namespace,
    mode: str,
    profile_dir: Path | None = None,
    max_calls: int = 0,
    route_server: bool = False,
    path: str = "extension",
) -> dict[str, Any]:
    """One measured run of ``mode`` along ``path`` (a key of ``CALLEE``); returns its
    figures (and a cProfile in ``profile_dir``)."""
    label = f"{mode}, {path}" + (", route server" if route_server else "")
    with work_folder(args.keep, label) as work:
        tone = work / "tone.ulaw"
        _tone_file(tone)
        run = Run(work, mode != PROXY_ONLY, max_calls=max_calls, baseline=mode == BASELINE,
                  route_server=route_server)  # fmt: skip
        profile = None
        if profile_dir and mode != BASELINE:
            profile_dir.mkdir(parents=True, exist_ok=True)
            profile = profile_dir.resolve() / f"appliance-{mode.replace(' ', '-')}.prof"
        try:
            pbx = run.start_pbx(profile)
            uas_port = run.uas_port
            values = {"PASSWORD": PASSWORD, "UAS_PORT": str(uas_port), "TONE": str(tone),
                      "CALLEE": CALLEE[path]}  # fmt: skip
            target = f"127.0.0.1:{run.sip_port}"
            register(work, target, values)
            run.spawn(
                ["sipp", "-sf", _scenario(work, "uas", UAS, **values), "-i", "127.0.0.1",
                 "-p", str(uas_port), "-mp", str(_free_port() + 6), "-cp", str(_free_port() + 7),
                 "-nostdin", "-max_socket", "4096"],
                "uas.log",
            )  # fmt: skip
            time.sleep(1)
            idle = {k: pss_kb(p) for k, p in _parts(run, pbx).items()}
            idle_pss = sum(idle.values())
            started = time.monotonic()
            scenario = _scenario(work, "uac", as_trunk(UAC) if path == "did" else UAC,
                                 **values)  # fmt: skip
            # Only the DID path's UAC sends from trunk carrier-in's port: elsewhere it is a phone.
            port = run.uac_port if path == "did" else 0
            with NgProbe(run.ng_port) if run.anchor_media else contextlib.nullcontext() as probe:
                uac = run.spawn(uac_argv(args, target, scenario, port=port), "uac.log")
                time.sleep(args.hold + 1)
                figures = steady_phase(args, run, pbx, uac, started)
                harness.record(f"{label}, steady phase", steady_text(figures))
                wait_uac(uac, args, work, label, started)
            if probe is not None:
                figures["ng"] = probe.trips.text()
                harness.record(f"{label}, rtpengine control", figures["ng"])
            figures["rate_s"] = time.monotonic() - started - args.hold
            figures.update(after_calls(args, run))
            figures["pss_parts"] = f"idle {pss_text(idle)}; steady {pss_text(figures['pss_split'])}"
        finally:
            run.close()
        if mode != BASELINE:
            figures.update(cdr_check(run, figures))
        harness.record(f"{label}, outcomes", f"{figures['outcome']}; {figures['leftovers']}")
        return result(args, label, max_calls, idle_pss, figures)


@contextlib.contextmanager
def work_folder(keep: Path | None, label: str) -> Iterator[Path]:
    """A temporary folder for one run, or ``keep/<label>`` kept after it."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="bench-pbx-") as tmp:
            yield Path(tmp)
        return
    work = keep.resolve() / re.sub(r"[, ]+", "-", label)
    work.mkdir(parents=True)
    yield work


def _parts(run: Run, pbx: subprocess.Popen[bytes]) -> dict[str, list[int]]:
    """The processes per CPU part: the appliance (or baseline runner) and each daemon."""
    groups = run.daemon_groups()
    daemons = [p for pids in groups.values() for p in pids]
    return {"appliance": [pbx.pid, *(p for p in _children(pbx.pid) if p not in daemons)],
            **groups}  # fmt: skip


def steady_phase(
    args: argparse.Namespace,
    run: Run,
    pbx: subprocess.Popen[bytes],
    uac: subprocess.Popen[bytes],
    started: float,
) -> dict[str, Any]:
    """CPU per part and peak PSS while every call is up (until the last call is placed), and
    CPU milliseconds per call sipp placed meanwhile (steadier than cores when sipp, on a
    loaded machine, places fewer calls per second than asked)."""
    parts = _parts(run, pbx)
    ticks0, t0 = {k: cpu_ticks(p) for k, p in parts.items()}, time.monotonic()
    created0 = _created(run.work)
    waits0 = {k: cpu_wait_ns(p) for k, p in parts.items()}
    peak_pss = 0
    pss_split = dict.fromkeys(parts, 0)
    while uac.poll() is None and time.monotonic() - started < args.calls / args.rate:
        now = {k: pss_kb(p) for k, p in parts.items() if k != "appliance"}
        if sum(now.values()) > peak_pss:
            peak_pss, pss_split = sum(now.values()), {**pss_split, **now}
        time.sleep(1)
    elapsed = time.monotonic() - t0
    seconds = os.sysconf("SC_CLK_TCK") * elapsed
    ticks = {k: cpu_ticks(p) - ticks0[k] for k, p in parts.items()}
    split = {k: n / seconds for k, n in ticks.items()}
    waits = {k: (cpu_wait_ns(p) - waits0[k]) / 1e9 / elapsed for k, p in parts.items()}
    created = _created(run.work) - created0
    per_call = 1000 * sum(ticks.values()) / os.sysconf("SC_CLK_TCK") / max(1, created)
    pss_split["appliance"] = pss_kb(parts["appliance"])
    pss_split["appliance main"] = pss_kb([pbx.pid])
    peak_pss += pss_split["appliance"]
    return {"cpu_cores": sum(split.values()), "cpu_split": split, "cpu_wait": waits,
            "peak_pss": peak_pss, "pss_split": pss_split, "cpu_ms_per_call": per_call,
            "calls_placed": created}  # fmt: skip


def _created(work: Path) -> int:
    """How many calls the UAC has placed so far (its last statistics line; 0 before one)."""
    try:
        return int(_stat(work, "uac.csv").get("TotalCallCreated", 0))
    except (harness.Incomplete, OSError, IndexError, ValueError):
        return 0


def steady_text(figures: dict[str, Any]) -> str:
    """The steady phase's figures as one line, PSS per part in MiB (the appliance's own
    process apart from its children, the WAV conversion worker among them)."""
    split = ", ".join(f"{k} {v:.2f}" for k, v in figures["cpu_split"].items())
    waits = ", ".join(f"{k} {v:.2f}" for k, v in figures["cpu_wait"].items())
    pss = pss_text(figures["pss_split"])
    return (f"CPU {figures['cpu_cores']:.2f} cores ({split}), "
            f"{figures['cpu_ms_per_call']:.2f} ms per call ({figures['calls_placed']} placed), "
            f"waiting for a CPU ({waits}) thread-s/s, "
            f"PSS {figures['peak_pss'] / 1024:.1f} MiB ({pss})")  # fmt: skip


def pss_text(parts: dict[str, int]) -> str:
    """PSS per part in MiB."""
    return ", ".join(f"{k} {v / 1024:.1f}" for k, v in parts.items())


def after_calls(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Once sipp is done: its statistics and outcomes, the WAVs (or the baseline's pcaps)
    as they drain, and the dialogs and rtpengine calls left."""
    stats = _stat(run.work, "uac.csv")
    outcomes = uac_outcomes(run.work)
    drained = time.monotonic()
    wavs = 0
    while run.anchor_media and time.monotonic() - drained < harness.limit(drain_limit_s(args)):
        wavs = len(recordings(run))
        if wavs >= len(outcomes.answered):
            break
        time.sleep(1)
    dialogs, sessions = edge_leftovers(run)
    failed = int(stats.get("FailedCall(C)", 0))
    return {
        "ok": int(stats.get("SuccessfulCall(C)", 0)),
        "failed": failed,
        "outcomes": outcomes,
        "wavs": wavs,
        "drain_s": time.monotonic() - drained,
        "audio_s": _audio_seconds(run.work / "data" / "recordings"),
        "outcome": counts(outcomes, failed),
        "leftovers": leftovers_text(dialogs, sessions),
        "clean": not dialogs and not sessions,
    }


def recordings(run: Run) -> list[Path]:
    """The appliance's WAVs, or for the baseline the recordings rtpengine has finished
    (their metadata files, written when a call is purged)."""
    if run.baseline:
        return list((run.work / "data" / "pbx" / "spool" / "metadata").glob("rtpengine-meta-*"))
    return list((run.work / "data" / "recordings").glob("*.wav"))


def leftovers_text(dialogs: int | None, sessions: int | None) -> str:
    """The dialogs and rtpengine calls left, ``-`` where the run has none to count."""
    kamailio = "- (no dialog module)" if dialogs is None else str(dialogs)
    rtpengine = "- (no media)" if sessions is None else str(sessions)
    return f"dialogs left in Kamailio {kamailio}, rtpengine calls left {rtpengine}"


def cdr_check(run: Run, figures: dict[str, Any]) -> dict[str, Any]:
    """The appliance's CDRs held against the outcomes (after the appliance stopped)."""
    check = check_cdrs(figures["outcomes"], read_cdrs(run.work / "data" / "store"))
    return {
        "outcome": summary(figures["outcomes"], figures["failed"], check),
        "clean": figures["clean"] and not check.problems,
    }


def result(
    args: argparse.Namespace, mode: str, max_calls: int, idle_pss: int, f: dict[str, Any]
) -> dict[str, Any]:
    """A run's figures as the table and the callers read them."""
    ok, failed = f["ok"], f["failed"]
    concurrent = min(args.calls, args.rate * args.hold, max_calls or args.calls)
    return {
        "mode": mode,
        "calls": ok + failed,
        "failed": failed,
        "failed_pct": 100 * failed / max(1, ok + failed),
        "rate": (ok + failed) / max(1e-3, f["rate_s"]),
        "concurrent": concurrent,
        "cpu_cores": f["cpu_cores"],
        "cpu_split": f["cpu_split"],
        "cpu_ms_per_call": f["cpu_ms_per_call"],
        "cpu_wait": f["cpu_wait"],
        "pss_mb": f["peak_pss"] / 1024,
        "pss_per_call_kb": max(0, f["peak_pss"] - idle_pss) / concurrent,
        "wavs": f["wavs"],
        "drain_s": f["drain_s"],
        "audio_s": f["audio_s"],
        "answered": len(f["outcomes"].answered),
        "refused": len(f["outcomes"].refused),
        "clean": f["clean"],
        "outcome": f["outcome"],
        "leftovers": f["leftovers"],
        "ng": f.get("ng"),
        "pss_parts": f["pss_parts"],
    }


def row(r: dict[str, Any]) -> str:
    """One result as a row of the table printed at the end."""
    split = " / ".join(f"{r['cpu_split'].get(k, 0):.2f}" for k in CPU_PARTS)
    return (f"| {r['mode']} | {r['calls']} | {r['failed']} ({r['failed_pct']:.2f}%) "
            f"| {r['rate']:.1f} | {r['concurrent']:.0f} | {r['cpu_cores']:.2f} "
            f"| {split} | {r['cpu_ms_per_call']:.2f} "
            f"| {r['pss_mb']:.1f} | {r['pss_per_call_kb']:.0f} | {r['wavs']} "
            f"| {r['drain_s']:.0f} | {r['audio_s']:.2f} |")  # fmt: skip


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--hold", type=float, default=4)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument(
        "--profile",
        type=Path,
        help="folder for a cProfile of the appliance process per mode (adds its overhead)",
    )
    parser.add_argument(
        "--max-calls",
        type=int,
        default=0,
        help="the edge's pbx.max_calls: past it calls are refused with 503 and Retry-After",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="a third run: Kamailio with a minimal script and rtpengine recording, no appliance",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep each run's work folder (sipp's, the appliance's and Kamailio's logs) in this "
        "new folder",
    )
    parser.add_argument(
        "--path",
        choices=sorted(CALLEE),
        default="extension",
        help="extension to extension, a phone's break-out to a SIP trunk, or a trunk's DID call",
    )
    parser.add_argument(
        "--route-server",
        action="store_true",
        help="each mode again with the trunk routes off: every call asks the routing chain",
    )
    parser.add_argument(
        "--proxy-only",
        action="store_true",
        help="only the proxy-only run (no recorded run, no ratio between the two)",
    )
    parser.add_argument(
        "--recorded-only",
        action="store_true",
        help="skip the proxy-only run (to alternate recorded runs of two trees)",
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-baseline", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        data = yaml.safe_load(args.serve_baseline.read_text())
        asyncio.run(pbx_baseline.serve(data, PASSWORD))
        return
    if args.serve:
        serve(yaml.safe_load(args.serve.read_text()), args.profile)
        return
    check_steady_phase(parser, args)
    if args.keep is not None and args.keep.exists():
        parser.error(f"--keep {args.keep}: the folder exists already")
    harness.run(measure, args)


def modes(args: argparse.Namespace) -> tuple[str, ...]:
    """The modes to run, in order."""
    if args.proxy_only:
        return (PROXY_ONLY,)
    every = (PROXY_ONLY, RECORDED, BASELINE) if args.baseline else (PROXY_ONLY, RECORDED)
    return every[1:] if args.recorded_only else every


def measure(args: argparse.Namespace) -> None:
    """Proxy only, recorded (and the raw baseline); the table and the ratios."""
    results = []
    for mode in modes(args):
        for asks in (False, True) if args.route_server and mode != BASELINE else (False,):
            results.append(run_load(args, mode, args.profile, args.max_calls, asks, args.path))
            harness.record(results[-1]["mode"], row(results[-1]))
    print("| mode | calls | failed | setup rate/s | concurrent | CPU cores "
          f"| CPU {' / '.join(CPU_PARTS)} | CPU ms per call placed | PSS MiB "
          "| PSS per call KiB | WAVs | WAVs drained (s) | audio per WAV (s) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(row(r))
    for r in results:
        print(f"{r['mode']}: {r['outcome']}; {r['leftovers']}"
              f"{'' if r['clean'] else ' (HALF SET UP)'}")  # fmt: skip
        waits = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_wait"].items())
        print(f"{r['mode']}: waiting for a CPU in the steady phase ({waits}) thread-s/s")
        if r["ng"]:
            print(f"{r['mode']}: {r['ng']}")
    for r in results:
        print(f"{r['mode']}: PSS MiB {r['pss_parts']}")
    if args.route_server:
        for tables, asked in zip(results[0:4:2], results[1:4:2], strict=True):
            print(f"{asked['mode']} / Kamailio's tables: CPU "
                  f"{asked['cpu_cores'] / max(tables['cpu_cores'], 1e-6):.2f}, appliance CPU "
                  f"{asked['cpu_split']['appliance']:.2f} / "
                  f"{tables['cpu_split']['appliance']:.2f} cores")  # fmt: skip
        results = [r for r in results if "route server" not in r["mode"]]
    if args.proxy_only:
        return
    if args.recorded_only:
        results.insert(0, {})
    else:
        proxy, full = results[:2]
        print(f"CPU ratio recorded/proxy: {full['cpu_cores'] / max(proxy['cpu_cores'], 1e-6):.1f}; "
              f"PSS ratio: {full['pss_mb'] / max(proxy['pss_mb'], 1e-6):.1f}")  # fmt: skip
    if args.baseline:
        full, raw = results[1:3]
        print(f"recorded, our edge / Kamailio + rtpengine alone: CPU "
              f"{full['cpu_cores'] / max(raw['cpu_cores'], 1e-6):.2f}, PSS "
              f"{full['pss_mb'] / max(raw['pss_mb'], 1e-6):.2f}, failed "
              f"{full['failed']} / {raw['failed']}")  # fmt: skip


def serve(data: dict[str, Any], profile: Path | None) -> None:
    """Run the PBX until signalled; with ``profile``, under cProfile, its stats written there."""
    if profile is None:
        asyncio.run(_serve(data))
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(_serve(data))
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


async def _serve(data: dict[str, Any]) -> None:
    from appliance.pbx.assembly import build_exchange
    from appliance.pbx.deciders import POLICY
    from appliance.pbx.settings import PbxSettings
    from appliance.settings import ApplianceSettings
    from appliance.store import Store
    from drivers.daemon.lifecycle import run_until_signalled
    from drivers.daemon.logs import configure_logging
    from drivers.sip.kamailio_config import Subscriber

    route_server = data.pop("bench_route_server", False)
    pbx = PbxSettings.model_validate(data.pop("pbx"))
    settings = ApplianceSettings.model_validate(data)
    configure_logging("info")
    logging.getLogger("appliance.pbx").setLevel(logging.WARNING)
    # The media pool's start and replacement times, which bench_media_workers.py reads.
    logging.getLogger("appliance.pbx.media").setLevel(logging.INFO)
    store = Store.open(settings.data_dir / "store", 512)
    subs = [Subscriber(e.number, e.password, e.name) for e in settings.sip.extensions]
    component = build_exchange(
        pbx, settings.site_id, settings.sip.domain, subs, lambda: store, settings.data_dir
    )
    if route_server:
        component.chain.add(AsksAboutTrunkCalls(), POLICY)
    try:
        await run_until_signalled([component])
    finally:
        store.close()


class AsksAboutTrunkCalls:
    """Passes every call unchanged but does not declare ``keeps_trunk_calls``: Kamailio then
    asks the routing chain about every trunk and DID call, as before the trunk routes."""

    name = "bench-route-server"
    keeps_local_calls = True

    def decide(self, query: Any, decision: Any) -> Any:
        """The decision unchanged."""
        return decision


if __name__ == "__main__":
    main()
