"""Secrets stay private: files holding them are 0600 and `config` hides them unless asked."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from appliance.cli.main import main
from appliance.demo.plan import load_secrets
from drivers.daemon.private_files import make_private, write_private
from drivers.daemon.redaction import REDACTED, redact
from drivers.sip.kamailio import KamailioDriver
from drivers.sip.kamailio_config import KamailioConfig, Subscriber

TOKEN = "local-admin-token-0123456789"
SIP_PASSWORD = "extension-password-1"
WEBHOOK_SECRET = "webhook-signing-secret"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> object:
    """A umask that would leave new files readable by all, as on many systems."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_private_file_is_0600_from_the_start_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "new")
    assert (path.read_text(), mode(path)) == ("new", 0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.json"]
    other = tmp_path / "made-by-a-library.sqlite"
    other.write_bytes(b"x")
    make_private(other)
    make_private(tmp_path / "missing")
    assert (mode(other), other.read_bytes(), mode(tmp_path / "missing")) == (0o600, b"x", 0o600)


def test_kamailio_cfg_and_the_subscriber_database_are_0600(tmp_path: Path) -> None:
    config = KamailioConfig(
        domain="branch.example",
        sip_host="127.0.0.1",
        sip_port=5070,
        evapi_port=5071,
        ng_port=5072,
        subscriber_db=str(tmp_path / "run" / "subscriber.sqlite"),
        module_path="/usr/lib/x86_64-linux-gnu/kamailio/modules/",
        route_secret="0f" * 32,
    )
    driver = KamailioDriver(tmp_path / "run", config, [Subscriber("1001", SIP_PASSWORD)])
    assert driver.write_files()
    assert mode(driver.cfg_path) == 0o600
    assert mode(tmp_path / "run" / "subscriber.sqlite") == 0o600
    driver.cfg_path.chmod(0o644)
    assert not driver.write_files()
    assert mode(driver.cfg_path) == 0o600


def test_the_demo_secrets_file_is_0600(tmp_path: Path) -> None:
    load_secrets(tmp_path)
    assert mode(tmp_path / "secrets.json") == 0o600


def test_redaction_hides_secret_fields_and_url_passwords_but_not_unset_ones() -> None:
    doc = {
        "api": {"tokens": [{"name": "ops", "token": TOKEN, "role": "admin"}]},
        "sip": {"extensions": [{"number": "1001", "password": SIP_PASSWORD}]},
        "pbx": {"webhook": {"secret": ""}, "peering": {"secrets": {"branch-b": "s3cret"}}},
        "gateway": {"modems": [{"pin": None}, {"pin": "1234"}]},
        "database": {"url": "postgresql://callmesh:db-pass@db.example/callmesh"},
        "sync": {"server_public_key": "public", "key_file": "/etc/keys/site.key_secret"},
    }
    assert redact(doc) == {
        "api": {"tokens": [{"name": "ops", "token": REDACTED, "role": "admin"}]},
        "sip": {"extensions": [{"number": "1001", "password": REDACTED}]},
        "pbx": {"webhook": {"secret": ""}, "peering": {"secrets": {"branch-b": REDACTED}}},
        "gateway": {"modems": [{"pin": None}, {"pin": REDACTED}]},
        "database": {"url": f"postgresql://callmesh:{REDACTED}@db.example/callmesh"},
        "sync": {"server_public_key": "public", "key_file": "/etc/keys/site.key_secret"},
    }


def appliance_config(tmp_path: Path) -> Path:
    config = {
        "site_id": "site-a",
        "profile": "branch",
        "data_dir": str(tmp_path / "data"),
        "api": {"tokens": [{"name": "ops", "token": TOKEN, "role": "admin"}]},
        "sip": {"extensions": [{"number": "1001", "password": SIP_PASSWORD}]},
        "pbx": {"webhook": {"url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET}},
    }
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_config_prints_secrets_redacted_unless_show_secrets_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = appliance_config(tmp_path)
    assert main(["appliance", "config", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    for secret in (TOKEN, SIP_PASSWORD, WEBHOOK_SECRET):
        assert secret not in out
    shown = json.loads(out)
    assert shown["api"]["tokens"][0] == {"name": "ops", "token": REDACTED, "role": "admin"}
    assert shown["pbx"]["webhook"]["url"] == "http://127.0.0.1:9/hook"

    assert main(["appliance", "config", "-c", str(path), "--show-secrets"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert full["api"]["tokens"][0]["token"] == TOKEN
    assert full["sip"]["extensions"][0]["password"] == SIP_PASSWORD
    assert full["pbx"]["webhook"]["secret"] == WEBHOOK_SECRET
