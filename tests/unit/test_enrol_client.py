"""`callmesh enrol` on the box: codes, URLs, key reuse, the drop-in, HQ's refusals."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
import yaml
import zmq

from appliance.enrolment import client
from drivers.sync import keys
from tests.procs import write_yaml

CODE = "site-a." + "b" * 52


def error_id(call: object, *args: object) -> str:
    with pytest.raises(client.EnrolError) as failed:
        call(*args)  # type: ignore[operator]
    return failed.value.error_id


@pytest.fixture
def target(tmp_path: Path) -> client.Target:
    config = write_yaml(tmp_path / "appliance.yaml", {"site_id": "x", "data_dir": str(tmp_path)})
    return client.target_of(config, None)


def test_the_code_names_the_site() -> None:
    assert client.site_of(CODE) == "site-a"
    assert error_id(client.site_of, "nodot") == "code-malformed"
    assert error_id(client.site_of, "Bad_Site.abc") == "code-malformed"


def test_plain_http_only_to_loopback_unless_allowed() -> None:
    assert client.check_url("http://127.0.0.1:8800/", False) == "http://127.0.0.1:8800"
    assert client.check_url("https://hq.example", False) == "https://hq.example"
    assert error_id(client.check_url, "http://hq.example", False) == "hq-url-insecure"
    assert client.check_url("http://hq.example", True) == "http://hq.example"
    assert error_id(client.check_url, "hq.example:8800", False) == "hq-url"


def test_the_keypair_is_made_once_with_a_private_secret(target: client.Target) -> None:
    secret, public = client.site_keypair(target, "site-a")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert client.site_keypair(target, "site-a") == (secret, public)


def test_hqs_answer_becomes_a_group_readable_drop_in(target: client.Target) -> None:
    secret, _ = client.site_keypair(target, "site-a")
    server = zmq.curve_keypair()[0].decode()
    answer = {"site_id": "site-a", "server_public_key": server, "endpoints": ["tcp://hq:5570"]}
    enrolled = client.save(target, secret, answer)
    assert enrolled.drop_in == target.config.parent / "conf.d" / "50-enrolment.yaml"
    assert stat.S_IMODE(enrolled.drop_in.stat().st_mode) == 0o640
    assert yaml.safe_load(enrolled.drop_in.read_text()) == {
        "site_id": "site-a",
        "sync": {
            "enabled": True,
            "endpoint": "tcp://hq:5570",
            "server_public_key": server,
            "key_file": str(secret),
        },
    }
    assert keys.load_secret(secret)[1].decode() not in enrolled.drop_in.read_text()


def test_an_answer_without_endpoints_or_key_is_refused(target: client.Target) -> None:
    secret, _ = client.site_keypair(target, "site-a")
    server = zmq.curve_keypair()[0].decode()
    no_endpoint = {"site_id": "site-a", "server_public_key": server, "endpoints": []}
    assert error_id(client.save, target, secret, no_endpoint) == "hq-no-endpoint"
    assert error_id(client.save, target, secret, {"site_id": "a"}) == "hq-bad-answer"


def answering(status: int, body: object) -> object:
    def post(url: str, _body: dict[str, str]) -> httpx.Response:
        return httpx.Response(status, json=body, request=httpx.Request("POST", url))

    return post


def test_hqs_refusal_keeps_its_error_id() -> None:
    refused = answering(403, {"error_id": "code-used", "message": "used"})
    assert error_id(client.ask_hq, refused, "http://hq", CODE, "k", 0) == "code-used"
    html = answering(502, ["not", "an", "object"])
    assert error_id(client.ask_hq, html, "http://hq", CODE, "k", 0) == "hq-bad-answer"


def test_an_unreachable_hq_is_retried_then_reported() -> None:
    tries: list[str] = []

    def down(url: str, _body: dict[str, str]) -> httpx.Response:
        tries.append(url)
        raise httpx.ConnectError("connection refused")

    assert error_id(client.ask_hq, down, "http://hq", CODE, "k", 1.5) == "hq-unreachable"
    assert len(tries) == 2


def test_a_missing_ca_file_is_a_tls_error(tmp_path: Path) -> None:
    assert error_id(client.http_client, tmp_path / "absent.pem") == "hq-tls"
