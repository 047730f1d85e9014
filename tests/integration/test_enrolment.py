"""Enrolment end to end: a real HQ issues a code, a real box enrols, restarts and syncs.

No HQ restart and no edit of HQ's YAML anywhere: the site's key reaches ZAP from the
database. Reused, expired and wrong codes are refused; a revoked key is cut off.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
import zmq

from aggregator.enrolment import codes
from aggregator.store.db import create_engine
from tests.pg import postgres_server
from tests.procs import ROOT, Service, callmesh, free_port
from tests.sync_env import TOKEN, SyncEnv, make_env, wait_for

ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def env(tmp_path: Path) -> SyncEnv:
    """HQ with no site in its YAML; a box with sync off and no keys yet."""
    env = make_env(tmp_path)
    agg = yaml.safe_load(env.agg_config.read_text())
    agg["ingest"]["sites"] = []
    env.agg_config.write_text(yaml.safe_dump(agg))
    app = yaml.safe_load(env.app_config.read_text())
    app["site_id"] = "unenrolled"
    app["sync"] = {k: v for k, v in app["sync"].items() if k not in ("endpoint", "enabled")}
    del app["sync"]["server_public_key"]
    env.app_config.write_text(yaml.safe_dump(app))
    shutil.rmtree(tmp_path / "app" / "keys")
    return env


@pytest.fixture
def hq(env: SyncEnv) -> Iterator[Service]:
    svc = Service(["aggregator", "run", "-c", str(env.agg_config)], env.root / "agg.log")
    try:
        svc.wait_healthy(f"{env.agg_url}/healthz")
        yield svc
    finally:
        svc.close()


def new_code(env: SyncEnv, site_id: str, **options: float) -> str:
    made = httpx.post(
        f"{env.agg_url}/api/v1/sites/{site_id}/enrolment", json=options, headers=ADMIN, timeout=10
    )
    made.raise_for_status()
    code: str = made.json()["code"]
    return code


def enrol(env: SyncEnv, code: str, config: Path | None = None, *extra: str) -> tuple[int, str]:
    done = callmesh(
        "enrol", "--hq", env.agg_url, "--code", code, "-c", str(config or env.app_config), *extra
    )
    return done.returncode, done.stdout + done.stderr


def hq_cli(env: SyncEnv, *args: str) -> subprocess.CompletedProcess[str]:
    """`callmesh hq ...` against the test HQ with the admin token."""
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli.main", "hq", *args, "--url", env.agg_url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "CALLMESH_HQ_TOKEN": TOKEN},
        check=False,
    )


def rejected(env: SyncEnv, reason: str) -> float:
    text = httpx.get(f"{env.agg_url}/metrics", timeout=5).text
    label = re.escape(f'callmesh_rejected_peers_total{{reason="{reason}"}}')
    found = re.search(rf"^{label} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_box_enrols_by_code_syncs_without_an_hq_restart_and_is_cut_when_revoked(
    env: SyncEnv, hq: Service
) -> None:
    hq_yaml = env.agg_config.read_text()
    code = new_code(env, "site-a")
    env.prefill(40)

    status, output = enrol(env, code)
    assert status == 0, output
    assert "enrolled as site site-a" in output
    assert code.split(".")[1] not in output
    secret_key = (env.root / "app" / "keys" / "site-a.key_secret").read_text()
    assert re.search(r'secret-key = "(.{40})"', secret_key).group(1) not in output  # type: ignore[union-attr]
    assert enrol(env, code)[0] == 0, "enrolling again with the same code and key is a no-op"

    app = Service(["appliance", "run", "-c", str(env.app_config)], env.root / "app.log")
    try:
        app.wait_healthy(f"{env.app_url}/healthz")
        wait_for(lambda: env.ingested() == 40, 30, "the enrolled site's CDRs at HQ")
        assert hq.proc.poll() is None
        assert env.agg_config.read_text() == hq_yaml

        revoked = httpx.delete(f"{env.agg_url}/api/v1/sites/site-a/key", headers=ADMIN, timeout=10)
        assert revoked.status_code == 200
        wait_for(lambda: rejected(env, "revoked-key") >= 1, 20, "the revoked key refused")
        assert app.signal(signal.SIGTERM) == 0
        env.prefill(10, start=40)
        app = Service(["appliance", "run", "-c", str(env.app_config)], env.root / "app2.log")
        app.wait_healthy(f"{env.app_url}/healthz")
        seen = rejected(env, "revoked-key")
        wait_for(lambda: rejected(env, "revoked-key") > seen, 20, "the restarted box refused")
        assert env.ingested() == 40
        assert env.pending() == 10
    finally:
        app.close()


def test_reused_expired_and_wrong_codes_are_refused_and_an_absent_hq_reported(
    env: SyncEnv, hq: Service, tmp_path: Path
) -> None:
    code = new_code(env, "site-a")
    assert enrol(env, code)[0] == 0
    other = tmp_path / "other" / "appliance.yaml"
    other.parent.mkdir()
    other.write_text(yaml.safe_dump({"site_id": "x", "data_dir": str(tmp_path / "other")}))

    status, output = enrol(env, code, other)
    assert status == 1
    assert "[error_id: code-used]" in output

    short = new_code(env, "site-b", ttl_s=0.5)
    time.sleep(1.0)
    status, output = enrol(env, short, other)
    assert status == 1
    assert "[error_id: code-expired]" in output

    made = hq_cli(env, "sites", "enrolment-code", "site-c", "--ttl-h", "1")
    assert made.returncode == 0, made.stderr
    assert "single use, valid until" in made.stderr
    wrong = made.stdout.strip()[:-3] + "zzz"
    assert "[error_id: code-wrong]" in enrol(env, wrong, other)[1]
    assert not (other.parent / "conf.d").exists()

    closed = f"http://127.0.0.1:{free_port()}"
    down = callmesh("enrol", "--hq", closed, "--code", code, "-c", str(other), "--retry-for", "0")
    assert down.returncode == 1
    assert "[error_id: hq-unreachable]" in down.stderr
    revoked = hq_cli(env, "sites", "revoke-key", "site-a")
    assert revoked.returncode == 0, revoked.stderr
    status, output = enrol(env, code)
    assert status == 1, "a revoked key does not come back with its used code"
    assert "[error_id: code-used]" in output
    for error_id in ("code-used", "code-expired", "code-wrong"):
        assert error_id in hq.output(), f"{error_id} not logged at HQ"


def test_the_code_lifecycle_holds_on_postgresql() -> None:
    key, other = zmq.curve_keypair()[0].decode(), zmq.curve_keypair()[0].decode()
    with postgres_server() as url:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                code = codes.create_code(conn, "site-a", 60).code
            with engine.begin() as conn:
                assert codes.enrol(conn, code, key, 5) == "site-a"
            with engine.begin() as conn:
                assert codes.enrol(conn, code, key, 5) == "site-a"
                with pytest.raises(codes.EnrolmentRefused, match="already used"):
                    codes.enrol(conn, code, other, 5)
                assert codes.revoke(conn, "site-a")
                assert codes.enrolled_keys(conn) == [codes.EnrolledKey("site-a", key, True)]
            read = codes.EnrolledKeyReader(lambda: engine)
            assert read() == [codes.EnrolledKey("site-a", key, True)]
            assert read() is None
        finally:
            engine.dispose()


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Answers every POST as HQ answers a wrong code."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"error_id": "code-wrong", "message": "wrong"}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback with a self-signed certificate: (its URL, the cert)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    server = http.server.HTTPServer(("127.0.0.1", 0), _Refusing)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_an_unverifiable_certificate_stops_enrolment_before_the_code_is_sent(
    env: SyncEnv, tls_server: tuple[str, Path]
) -> None:
    url, cert = tls_server
    code = "site-a." + "a" * 52
    untrusted = callmesh("enrol", "--hq", url, "--code", code, "-c", str(env.app_config))
    assert untrusted.returncode == 1
    assert "[error_id: hq-tls]" in untrusted.stderr
    trusted = callmesh(
        "enrol", "--hq", url, "--code", code, "-c", str(env.app_config), "--ca-file", str(cert)
    )
    assert trusted.returncode == 1
    assert "[error_id: code-wrong]" in trusted.stderr
    assert not (env.app_config.parent / "conf.d").exists()
