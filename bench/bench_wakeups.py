"""Wake-up calls at scale: N wake-ups due the same minute, each placed, answered or retried,
and reported to the PMS exactly once.

The whole hotel appliance runs as a process (Kamailio, rtpengine, the media workers, the
PMS link) against the project's PMS simulator (``callmesh pms-simulator``) with N rooms,
every one checked in. sipp registers the N room extensions and answers for them, in three
kinds of room by room number:

- ``--confirm`` of the rooms (default 60 %) answer after a ring, listen, and press 1
  (DTMF by SIP INFO): confirmed, WA ``OK``;
- ``--busy`` of them (default 20 %) answer 486 every time: retried, then WA ``BY``;
- the rest ring until the PBX gives up (``--ring`` s): retried, then WA ``NR``.

The simulator sends every WR for the same ``HHMM00`` (the next minute at least
``--lead`` s away). The figure is the time from that due time to the moment the PMS has
received a WA for every room, with no room answered twice and every status the one its
kind of room earns; beside it the calls placed (first attempts and retries), the WAs over
time, and the media workers' PSS (idle and peak). Target (issue 18): 300 wake-ups all
reported within 5 minutes on a 2-core machine.

    .venv/bin/python bench/bench_wakeups.py --rooms 300 --workers 6

Every wait is bounded (``--limit`` s after the due time for the reports); a run that cannot
finish prints what it measured so far. Needs the Debian packages kamailio,
kamailio-extra-modules, rtpengine-daemon, sip-tester, espeak-ng.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import math
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_pbx_calls import _children, pss_kb
from bench_pbx_calls import _free_port as _port

from bench import harness

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "bench.local"
PASSWORD = "bench-room-password-1"
TOKEN = "bench-wake-ups-api-token-0123456789"
START_S = 60
REGISTER_S = 120
POLL_S = 2.0
FIRST_EXTENSION = 20000
PLACED = re.compile(r"wake-up call \d+ to room")

# One REGISTER with its digest answer per room, REGISTER_CHUNK rooms per sipp call (sipp
# takes the authentication's username from the scenario, not from an injection file, and
# refuses a scenario file over 64 KiB: about 80 rooms).
REGISTER_CHUNK = 50
REGISTER_ROOM = """<send retrans="500"><![CDATA[
REGISTER sip:DOMAIN SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:USER@DOMAIN>;tag=rUSER
To: <sip:USER@DOMAIN>
Call-ID: [call_id]
CSeq: CSEQ1 REGISTER
Contact: <sip:USER@127.0.0.1:PORT>
Expires: 3600
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="401" auth="true"/>
<send retrans="500"><![CDATA[
REGISTER sip:DOMAIN SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:USER@DOMAIN>;tag=rUSER
To: <sip:USER@DOMAIN>
Call-ID: [call_id]
CSeq: CSEQ2 REGISTER
Contact: <sip:USER@127.0.0.1:PORT>
[authentication username=USER password=PASSWORD]
Expires: 3600
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="200"/>
"""


def register_scenario(contacts: dict[str, int]) -> str:
    """The sipp scenario registering every extension at its port."""
    blocks = [
        REGISTER_ROOM.replace("USER", user).replace("PORT", str(port))
        .replace("CSEQ1", str(2 * n + 1)).replace("CSEQ2", str(2 * n + 2))
        for n, (user, port) in enumerate(contacts.items())
    ]  # fmt: skip
    body = "".join(blocks).replace("DOMAIN", DOMAIN).replace("PASSWORD", PASSWORD)
    head = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="rooms">\n'
    return f"{head}{body}</scenario>\n"


_RINGING = """<send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=[pid]w[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:room@[local_ip]:[local_port]>
Content-Length: 0

]]></send>
"""

CONFIRM = (
    """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="room that confirms">
<recv request="INVITE" crlf="true" rrs="true"/>
"""
    + _RINGING
    + """<pause milliseconds="RING_MS"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=[pid]w[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:room@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
]]></send>
<recv request="ACK" crlf="true">
  <action>
    <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote"/>
    <ereg regexp=".*" search_in="hdr" header="To:" assign_to="local"/>
  </action>
</recv>
<pause milliseconds="LISTEN_MS"/>
<send retrans="500"><![CDATA[
INFO [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: [$local]
To: [$remote]
Call-ID: [call_id]
CSeq: 2 INFO
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal=1
Duration=160
]]></send>
<recv response="200" optional="true"/>
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
)

BUSY = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="busy room">
<recv request="INVITE" crlf="true"/>
<send><![CDATA[
SIP/2.0 486 Busy Here
[last_Via:]
[last_From:]
[last_To:];tag=[pid]w[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
<recv request="ACK"/>
</scenario>
"""

SILENT = (
    """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="room that does not answer">
<recv request="INVITE" crlf="true" rrs="true">
  <action>
    <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseq"/>
  </action>
</recv>
"""
    + _RINGING
    + """<recv request="CANCEL"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]w[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
<send><![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]w[call_number]
[last_Call-ID:]
CSeq: [$cseq] INVITE
Content-Length: 0

]]></send>
<recv request="ACK"/>
</scenario>
"""
)

KINDS = {"confirm": ("OK", CONFIRM), "busy": ("BY", BUSY), "silent": ("NR", SILENT)}


def room_kinds(rooms: int, confirm: float, busy: float) -> dict[str, str]:
    """Each room's kind, spread evenly over the room numbers."""
    kinds = {}
    for n in range(1, rooms + 1):
        share = (n * 0.6180339887) % 1.0
        kinds[f"{n:04d}"] = (
            "confirm" if share < confirm else "busy" if share < confirm + busy else "silent"
        )
    return kinds


def extension(room: str) -> str:
    return str(FIRST_EXTENSION + int(room))


class Hotel:
    """The PMS simulator, the hotel appliance, and sipp registering and answering for the
    rooms, in ``work``; every process is stopped by the harness when the run ends."""

    def __init__(self, work: Path, args: argparse.Namespace, kinds: dict[str, str]) -> None:
        self.work, self.args, self.kinds = work, args, kinds
        self.sip_port, self.api_port = _port(), _port() + 3
        self.uas_ports = {kind: _port() + 5 for kind in KINDS}
        self.control = ""
        self.fias_port = 0
        self.appliance: Any = None

    def start_pms(self) -> None:
        info = self.work / "pms.json"
        harness.spawn(
            [sys.executable, "-m", "appliance.cli.main", "pms-simulator",
             "--rooms", f"0001-{self.args.rooms:04d}", "--json", str(info)],
            self.work / "pms.log", cwd=ROOT,
        )  # fmt: skip
        harness.wait_until(lambda: info.exists() and info.stat().st_size > 0, 30, "PMS start")
        ports = json.loads(info.read_text())
        self.control = ports["control"]
        self.fias_port = int(ports["fias_port"])
        with httpx.Client(base_url=self.control, timeout=10) as control:
            for room in self.kinds:
                control.post(f"/rooms/{room}/check-in", json={"name": f"Guest {room}"})

    def start_appliance(self) -> None:
        config = self.work / "appliance.yaml"
        config.write_text(yaml.safe_dump(self._config()))
        log = self.work / "appliance.log"
        self.appliance = harness.spawn(
            [sys.executable, "-m", "appliance.cli.main", "appliance", "run", "--config",
             str(config)], log, cwd=ROOT,
        )  # fmt: skip

        def linked() -> bool:
            if self.appliance.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise harness.Incomplete(f"the appliance exited while starting: {tail}")
            try:
                status = self.api("/hotel/pms")
            except httpx.HTTPError:
                return False
            return bool(status["state"] == "active" and status["rooms"] >= self.args.rooms)

        harness.wait_until(linked, START_S, "appliance start and PMS resync", interval=0.5)

    def _config(self) -> dict[str, Any]:
        args, rtp = self.args, random.randrange(30000, 50000, 1000)
        rooms = [{"room": room, "extension": extension(room)} for room in self.kinds]
        return {
            "site_id": "bench-hotel",
            "profile": "hotel",
            "data_dir": str(self.work / "data"),
            "site": {"timezone": "UTC"},
            "http": {"host": "127.0.0.1", "port": self.api_port},
            "api": {"tokens": [{"name": "bench", "token": TOKEN, "role": "operator"}]},
            "sip": {"domain": DOMAIN, "extensions": [
                {"number": r["extension"], "password": PASSWORD} for r in rooms]},
            "pbx": {
                "enabled": True, "sip_port": self.sip_port, "evapi_port": _port() + 1,
                "rtpengine_ng_port": _port() + 2, "route_port": _port() + 4,
                "rtp_port_min": rtp, "rtp_port_max": rtp + 999, "kamailio_children": 4,
                "pike_exempt": ["127.0.0.1"], "no_answer_s": args.ring, "record_calls": False,
                "media": {"workers": args.workers, "port_base": _port() + 6},
            },
            "hotel": {
                "pms": {"port": self.fias_port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
                "rooms": rooms,
                "wake_up": {"retries": args.retries, "retry_interval_s": args.retry_interval,
                            "attempt_timeout_s": max(60, args.ring + 30)},
            },
        }  # fmt: skip

    def api(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        url = f"http://127.0.0.1:{self.api_port}/api/v1{path}"
        answer = httpx.get(url, headers=headers, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def start_rooms(self) -> None:
        """A sipp UAS per kind of room, then every room's extension registered at its UAS."""
        for kind, (_, text) in KINDS.items():
            scenario = self.work / f"{kind}.xml"
            scenario.write_text(text.replace("RING_MS", str(self.args.answer_after_ms))
                                .replace("LISTEN_MS", str(self.args.listen_ms)))  # fmt: skip
            harness.spawn(
                ["sipp", "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(self.uas_ports[kind]),
                 "-mp", str(_port() + 100), "-nostdin", "-max_socket", "4096"],
                self.work / f"{kind}.log", cwd=self.work,
            )  # fmt: skip
        contacts = [(extension(r), self.uas_ports[k]) for r, k in self.kinds.items()]
        started = time.monotonic()
        chunks = [dict(contacts[i:i + REGISTER_CHUNK])
                  for i in range(0, len(contacts), REGISTER_CHUNK)]  # fmt: skip
        registers = [self._register(n, chunk) for n, chunk in enumerate(chunks)]
        for n, register in enumerate(registers):
            if harness.wait_exit(register, REGISTER_S + 10, "registering the rooms", started) != 0:
                errors = self.work / f"register-{n}-errors.log"
                tail = errors.read_text(errors="replace")[-1500:] if errors.exists() else ""
                raise harness.Incomplete(f"registering the rooms failed: {tail}")

    def _register(self, n: int, contacts: dict[str, int]) -> subprocess.Popen[bytes]:
        """One sipp registering ``contacts`` (its scenario must stay under sipp's 64 KiB)."""
        scenario = self.work / f"register-{n}.xml"
        scenario.write_text(register_scenario(contacts))
        return harness.spawn(
            ["sipp", f"127.0.0.1:{self.sip_port}", "-sf", str(scenario), "-m", "1",
             "-i", "127.0.0.1", "-p", str(_port() + 200), "-nostdin",
             "-timeout", f"{REGISTER_S}s", "-trace_err",
             "-error_file", str(self.work / f"register-{n}-errors.log")],
            self.work / f"register-{n}.log", cwd=self.work,
        )  # fmt: skip

    def request_wake_ups(self) -> tuple[float, str, str]:
        """Every room's WR for the same minute; the due time and the WR's DA and TI."""
        now = dt.datetime.now(dt.UTC)
        due = (now + dt.timedelta(seconds=self.args.lead + 60)).replace(second=0, microsecond=0)
        date, time_ = due.strftime("%y%m%d"), due.strftime("%H%M%S")
        with httpx.Client(base_url=self.control, timeout=10) as control:
            for room in self.kinds:
                answer = control.post(f"/rooms/{room}/wake-up", json={"date": date, "time": time_})
                answer.raise_for_status()
        return due.timestamp(), date, time_

    def received(self) -> list[str]:
        with httpx.Client(base_url=self.control, timeout=30) as control:
            answer = control.get("/state")
            answer.raise_for_status()
            return list(answer.json()["received"])

    def workers(self) -> list[int]:
        found = []
        for pid in _children(self.appliance.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"drivers.media.worker" in cmdline:
                found.append(pid)
        return found

    def calls_placed(self) -> int:
        """Wake-up calls the appliance logged as placed, less those a full worker refused."""
        log = (self.work / "appliance.log").read_text(errors="replace")
        return len(PLACED.findall(log)) - log.count("found its worker full")


class Progress:
    """The WAs the PMS received so far, by room, with when each was first seen."""

    def __init__(self, date: str, time_: str, due: float) -> None:
        self.stamp = f"|DA{date}|TI{time_}|"
        self.due = due
        self.answers: dict[str, list[str]] = collections.defaultdict(list)
        self.seen_at: dict[str, float] = {}

    def update(self, received: list[str]) -> None:
        self.answers.clear()
        for record in received:
            if record.startswith("WA|") and self.stamp in record:
                room = record.split("|RN", 1)[1].split("|", 1)[0]
                status = record.split("|AS", 1)[1].split("|", 1)[0]
                self.answers[room].append(status)
                self.seen_at.setdefault(room, time.time())

    def summary(self) -> str:
        statuses = collections.Counter(s for answers in self.answers.values() for s in answers)
        return ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) or "none"


def measure(args: argparse.Namespace) -> None:
    kinds = room_kinds(args.rooms, args.confirm, args.busy)
    counts = collections.Counter(kinds.values())
    print(f"rooms: {args.rooms} ({counts['confirm']} confirm with DTMF 1, {counts['busy']} "
          f"busy, {counts['silent']} do not answer); retries {args.retries} every "
          f"{args.retry_interval:.0f} s; ring {args.ring} s; media workers {args.workers} x 4 "
          f"call slots", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        hotel = Hotel(Path(tmp), args, kinds)
        hotel.start_pms()
        hotel.start_appliance()
        hotel.start_rooms()
        idle_pss = pss_kb(hotel.workers())
        harness.record("media workers' PSS idle", f"{idle_pss / 1024:.1f} MiB")
        due, date, time_ = hotel.request_wake_ups()
        print(f"wake-ups due {date} {time_} UTC (in {due - time.time():.0f} s)", flush=True)
        progress = Progress(date, time_, due)
        peak = follow(hotel, progress, args, idle_pss)
        report(hotel, progress, kinds, args, (idle_pss, peak))


def follow(hotel: Hotel, progress: Progress, args: argparse.Namespace, idle_pss: int) -> int:
    """Poll the PMS until every room has its WA, bounded by ``--limit`` after the due time;
    the media workers' peak PSS (KiB)."""
    peak = idle_pss
    deadline = progress.due + harness.limit(args.limit)
    last_print = 0.0
    while True:
        progress.update(hotel.received())
        peak = max(peak, pss_kb(hotel.workers()))
        elapsed = time.time() - progress.due
        harness.record("WAs received", f"{len(progress.answers)}/{args.rooms} after "
                       f"{max(0.0, elapsed):.0f} s ({progress.summary()})")  # fmt: skip
        harness.record("media workers' PSS peak", f"{peak / 1024:.1f} MiB")
        harness.record("calls placed", hotel.calls_placed())
        if len(progress.answers) >= args.rooms:
            break
        if time.time() > deadline:
            waited = harness.limit(args.limit)
            raise harness.Incomplete(f"not every wake-up was reported within {waited:.0f} s "
                                     "of the due time")  # fmt: skip
        if elapsed >= 0 and time.monotonic() - last_print >= 30:
            last_print = time.monotonic()
            print(f"  +{elapsed:.0f} s: {len(progress.answers)} WAs ({progress.summary()}), "
                  f"{hotel.calls_placed()} calls placed", flush=True)  # fmt: skip
        time.sleep(POLL_S)
    return peak


def report(
    hotel: Hotel,
    progress: Progress,
    kinds: dict[str, str],
    args: argparse.Namespace,
    pss: tuple[int, int],
) -> None:
    time.sleep(POLL_S * 2)  # a second WA for a room would show now
    progress.update(hotel.received())
    last = max(progress.seen_at.values()) - progress.due
    doubled = sorted(room for room, answers in progress.answers.items() if len(answers) > 1)
    wrong = sorted(room for room, answers in progress.answers.items()
                   if answers[0] != KINDS[kinds[room]][0])  # fmt: skip
    placed = hotel.calls_placed()
    workers = max(1, len(hotel.workers()))
    idle_pss, peak = pss
    times = sorted(at - progress.due for at in progress.seen_at.values())
    quartiles = [times[min(len(times) - 1, math.ceil(q * len(times)) - 1)] for q in (0.5, 0.9)]
    verdict = "within" if last <= args.target else "NOT within"
    print(f"all {args.rooms} reported {last:.1f} s after the due time ({verdict} the "
          f"{args.target:.0f} s target); half by {quartiles[0]:.0f} s, 90 % by "
          f"{quartiles[1]:.0f} s")  # fmt: skip
    print(f"WAs: {progress.summary()}; rooms answered twice: {len(doubled)} {doubled[:10]}; "
          f"status not the room's: {len(wrong)} {wrong[:10]}")  # fmt: skip
    print(f"calls placed: {placed} ({args.rooms} first attempts, {placed - args.rooms} retries)")
    print(f"media workers' PSS: idle {idle_pss / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB "
          f"({workers} workers, {peak / 1024 / workers:.1f} MiB each)")  # fmt: skip
    if doubled or wrong:
        raise harness.Incomplete("a room got more than one WA or the wrong status")


def main() -> None:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=300)
    parser.add_argument("--workers", type=int, default=6, help="media workers (4 calls each)")
    parser.add_argument("--confirm", type=float, default=0.6, help="share of rooms pressing 1")
    parser.add_argument("--busy", type=float, default=0.2, help="share of busy rooms")
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--retry-interval", type=float, default=60.0)
    parser.add_argument("--ring", type=int, default=20, help="s a room rings unanswered")
    parser.add_argument("--answer-after-ms", type=int, default=2000)
    parser.add_argument("--listen-ms", type=int, default=2000, help="before pressing 1")
    parser.add_argument("--lead", type=float, default=20.0, help="s at least before due")
    parser.add_argument("--target", type=float, default=300.0)
    parser.add_argument("--limit", type=float, default=900.0, help="s after due, at most")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    if not 0 <= args.confirm + args.busy <= 1 or args.rooms < 1 or args.rooms > 9999:
        parser.error("--confirm + --busy must be within 0..1 and --rooms within 1..9999")
    harness.run(measure, args)


if __name__ == "__main__":
    main()
