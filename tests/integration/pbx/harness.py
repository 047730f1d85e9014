"""Real PBX processes for integration tests: the PBX runner, pjsua2 phones, sipp. All bounded."""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from appliance.demo.plan import free_port_run
from appliance.store import Outbox, StateStore, Store
from tests.loopback_http import LoopbackHttp, Reply
from tests.procs import ROOT, write_yaml

HERE = Path(__file__).parent
WEBHOOK_SECRET = "webhook-secret-for-tests"
API_TOKEN = "api-token-for-pbx-tests-0123456789"
ADMIN_TOKEN = "admin-token-for-pbx-tests-0123456789"
DOMAIN = "test.local"
EXTENSIONS = {"1001": "Alice", "1002": "Bob", "1003": "Carol"}
Event = dict[str, Any]


def require_debs() -> None:
    """Fail with what to install when the Debian packages are missing."""
    needed = ("kamailio", "rtpengine", "sipp", "espeak-ng")
    missing = [b for b in needed if shutil.which(b) is None]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: apt-get install kamailio kamailio-sqlite-modules "
            "kamailio-extra-modules rtpengine-daemon sip-tester espeak-ng (./run test does this)"
        )


def free_udp_tcp_port(low: int = 20000, high: int = 29999) -> int:
    """A port in ``low..high`` free for both UDP and TCP on loopback a moment ago."""
    for _ in range(50):
        port = random.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            try:
                udp.bind(("127.0.0.1", port))
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port found")


def sipp_media_port() -> int:
    """sipp's ``-mp``: sipp binds its audio and video RTP ports from there (``-mp`` and
    ``-mp`` + 2, RTCP beside each) and places no call at all when one is taken."""
    return free_port_run(4, first=random.randrange(20000, 29996, 4))


def media(workers: int = 1, **extra: Any) -> dict[str, Any]:
    """PBX ``media`` settings for ``workers`` workers on free ports."""
    base = free_port_run(workers, first=random.randrange(20000, 29000))
    return {"workers": workers, "port_base": base, **extra}


def password(number: str) -> str:
    return f"secret-{number}-pw"


class Pbx:
    """The BranchExchange with its own Store, run as a process by ``pbx_runner.py``."""

    def __init__(self, root: Path, extensions: dict[str, str] | None = None, **pbx: Any) -> None:
        self.root = root
        self.data = root / "data"
        rtp = random.randrange(30000, 59000, 200)
        self.settings = {
            "sip_port": free_udp_tcp_port(),
            "evapi_port": free_udp_tcp_port(),
            "rtpengine_ng_port": free_udp_tcp_port(),
            "route_port": free_udp_tcp_port(),
            "rtp_port_min": rtp,
            "rtp_port_max": rtp + 199,
            "kamailio_children": 2,
            "no_answer_s": 3,
            "media": {"workers": 0},
            **pbx,
        }
        self.api_port = free_udp_tcp_port()
        self.config = write_yaml(root / "appliance.yaml", {
            "site_id": "test-site",
            "profile": "branch",
            "data_dir": str(self.data),
            "sip": {"domain": DOMAIN, "extensions": [
                {"number": n, "password": password(n), "name": name}
                for n, name in (extensions or EXTENSIONS).items()
            ]},
            "pbx": self.settings,
            "api": {"tokens": [{"name": "ops", "token": API_TOKEN, "role": "operator"},
                               {"name": "admin", "token": ADMIN_TOKEN, "role": "admin"}]},
            "test_api_port": self.api_port,
        })  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "runner.log"

    @property
    def sip_port(self) -> int:
        return int(self.settings["sip_port"])

    def start(self, timeout: float = 20) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "pbx_runner.py"), str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        wait_for(lambda: "ready components" in self.output(), timeout, self.output)

    def output(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        kamailio = self.data / "pbx" / "run" / "kamailio.log"
        if kamailio.exists():
            text += "\n--- kamailio.log tail ---\n" + kamailio.read_text(errors="replace")[-3000:]
        return text

    def api(
        self, method: str, path: str, body: Any = None, token: str = API_TOKEN
    ) -> tuple[int, Any]:
        """Call the PBX's HTTP API (as the operator by default); status and decoded JSON."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/api/v1{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def daemon_pid(self, name: str) -> int:
        return int((self.data / "pbx" / "run" / f"{name}.pid").read_text().split()[0])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=5)
        self.proc = None

    def store_read(self, reader: Callable[[Store], Any]) -> Any:
        store = Store.open(self.data / "store", 64)
        try:
            return reader(store)
        finally:
            store.close()

    def cdrs(self) -> list[Event]:
        def read(store: Store) -> list[Event]:
            return [msgpack.unpackb(p, raw=False) for _, p in Outbox(store, "cdr").read_batch()]

        result: list[Event] = self.store_read(read)
        return result

    def cdr_for(self, call_id_hint: Callable[[Event], bool], timeout: float = 10) -> Event:
        found: list[Event] = []

        def ready() -> bool:
            found[:] = [c for c in self.cdrs() if call_id_hint(c)]
            return bool(found)

        wait_for(ready, timeout, lambda: f"CDRs: {self.cdrs()}\n{self.output()}")
        return found[-1]

    def recording(self, rec_id: str, timeout: float = 10) -> dict[str, Any]:
        def get() -> Any:
            return self.store_read(lambda s: StateStore(s, "pbx-recordings").get(rec_id))

        wait_for(lambda: get() is not None, timeout, self.output)
        entry: dict[str, Any] = get()
        return entry


class Phone:
    """A pjsua2 phone process (tests/integration/pbx/phone.py).

    ``host`` is the PBX's SIP address (the phone binds there too, unless ``bind`` names
    another address); ``netns`` runs the phone inside that network namespace; with
    ``sip_port`` it listens there without registering (a SIP trunk's far end).
    """

    def __init__(
        self,
        pbx: Any,
        number: str,
        tone: int,
        root: Path,
        secret: str | None = None,
        domain: str = DOMAIN,
        host: str = "127.0.0.1",
        netns: str | None = None,
        bind: str = "",
        sip_port: int = 0,
    ) -> None:
        self.number = number
        self.record = root / f"heard-{number}.wav"
        self.events: list[Event] = []
        self.log: list[str] = []
        self._buffer = b""
        wrap = ["ip", "netns", "exec", netns] if netns else []
        self.proc = subprocess.Popen(
            [*wrap, sys.executable, str(HERE / "phone.py"), "--user", number,
             "--proxy-host", host, f"--bind-host={bind}",
             f"--password={secret or password(number)}", "--domain", domain,
             "--proxy-port", str(pbx.sip_port), "--tone", str(tone),
             "--record", str(self.record), "--rtp-port", str(random.randrange(40000, 60000, 20)),
             "--sip-port", str(sip_port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=ROOT, text=True,
        )  # fmt: skip

    def send(self, cmd: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()

    def wait(self, match: Callable[[Event], bool], timeout: float = 10) -> Event:
        for event in self.events:
            if match(event):
                self.events.remove(event)
                return event
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], 0.1)[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._buffer += chunk
            *lines, rest = self._buffer.split(b"\n")
            self._buffer = rest
            for raw in lines:
                line = raw.decode(errors="replace")
                if not line.startswith("@ev "):
                    self.log.append(line + "\n")
                    continue
                self.events.append(json.loads(line[4:]))
            for event in self.events:
                if match(event):
                    self.events.remove(event)
                    return event
        tail = "".join(self.log[-20:])
        raise AssertionError(f"phone {self.number}: no matching event; saw {self.events}\n{tail}")

    def state(self, name: str, timeout: float = 10) -> Event:
        return self.wait(lambda e: e.get("state") == name, timeout)

    def answer(self, timeout: float = 10) -> Event:
        """Wait for a call, answer it and wait until it is confirmed; the incoming event."""
        incoming = self.wait(lambda e: e["ev"] == "incoming", timeout)
        self.send("answer")
        self.state("CONFIRMED")
        return incoming

    def registered(self, timeout: float = 10) -> int:
        code: int = self.wait(lambda e: e["ev"] == "reg", timeout)["code"]
        return code

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.send("quit")
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@contextlib.contextmanager
def phones(pbx: Pbx, root: Path, *specs: tuple[str, int]) -> Iterator[list[Phone]]:
    """Registered phones for a ``with`` block; always closed."""
    started = [Phone(pbx, number, tone, root) for number, tone in specs]
    try:
        for phone in started:
            assert phone.registered() == 200
        yield started
    finally:
        for phone in started:
            phone.close()


def connect_call(caller: Phone, callee: Phone) -> None:
    """Caller dials callee, callee answers, both confirmed."""
    caller.send("call", to=callee.number)
    callee.answer()
    caller.state("CONFIRMED")


def wait_for(ready: Callable[[], bool], timeout: float, why: Callable[[], str]) -> None:
    """Poll ``ready`` until true or fail after ``timeout`` seconds with ``why()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s\n{why()}")


def no_daemons_left(root: Path) -> bool:
    """Whether no Kamailio or rtpengine started under ``root`` is still running."""
    needle = str(root).encode()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                if needle in Path(f"/proc/{pid}/cmdline").read_bytes():
                    status = Path(f"/proc/{pid}/status").read_text()
                    if "State:\tZ" not in status:
                        return False
    return True


@contextlib.contextmanager
def started(instance: Pbx) -> Iterator[Pbx]:
    """``instance`` running; stopped afterwards, with no daemon of it left behind."""
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(instance.root)


def worker_pid(pbx: Pbx, address: str) -> int:
    """The pid of the PBX's media worker listening on ``address`` (0: none runs)."""
    port = address.rsplit(":", 1)[1]
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"drivers.media.worker" in cmdline and str(pbx.root).encode() in b" ".join(cmdline):
            config = Path(cmdline[-2].decode()).read_text()
            if f'"port": {port}' in config:
                return int(pid)
    return 0


class WebhookReceiver(LoopbackHttp):
    """An HTTP server on loopback that records every POST (headers and JSON body)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        super().__init__(self._answer)
        self.url = f"{self.base}/hook"

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        self.received.append((headers, body))
        return Reply(204, b"", content_type=None)

    def events_for(self, call_id: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in self.received if json.loads(b)["call_id"] == call_id]
