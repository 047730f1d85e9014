"""Provisioning answers: file, flags over it, prompts for the rest, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.provision import ProvisionError
from appliance.provision import answers as a

HQ_KEY = "eKaCzAi6lLbNCLqI82fj/zumuCCxH3oXabCRdIGHZBg="
SITE = {"id": "branch-berlin", "name": "Berlin office", "timezone": "Europe/Berlin"}


def refusal(data: dict[str, object]) -> str:
    with pytest.raises(ProvisionError) as caught:
        a.validate(data)
    assert caught.value.error_id == "answers-invalid"
    return caught.value.message


def test_a_complete_answer_set_validates() -> None:
    tunnel = {"address": "10.99.0.2/32", "peer_public_key": HQ_KEY,
              "endpoint": "hq.example:51820", "allowed_ips": ["10.0.0.0/8"]}  # fmt: skip
    answers = a.validate({
        "site": {**SITE, "region": "eu-central"},
        "network": {"lan": {"name": "eth0", "dhcp": True}, "vlan": {"id": 20},
                    "wireguard": tunnel},
    })  # fmt: skip
    assert answers.site.region == "eu-central"
    assert answers.network.wireguard is not None
    assert answers.network.wireguard.interface == "wg-hq"
    assert answers.modems.scan


def test_each_bad_answer_is_named_with_what_to_fix() -> None:
    message = refusal({"site": {"id": "Berlin!", "name": "", "timezone": "Mars/Olympus"}})
    assert "site.id: should match" in message
    assert "site.name" in message
    assert "site.timezone: unknown time zone 'Mars/Olympus': use an IANA name" in message


def test_a_missing_site_says_how_to_give_it() -> None:
    assert refusal({}) == ("site: missing: give it in the answers file, by flag or at the prompt")


def test_a_misspelt_key_is_refused() -> None:
    assert "site.zone: unknown key" in refusal({"site": {**SITE, "zone": "UTC"}})


def test_bad_network_answers() -> None:
    message = refusal({"site": SITE, "network": {
        "lan": {"name": "eth0", "addresses": ["10.1.0.300/24"]},
        "vlan": {"id": 5000},
        "wireguard": {"address": "10.99.0.2/32", "peer_public_key": "not-a-key",
                      "endpoint": "hq", "allowed_ips": ["10.0.0.0/33"]},
    }})  # fmt: skip
    assert "network.lan.addresses: '10.1.0.300/24' is not an address with a prefix" in message
    assert "network.vlan.id" in message
    assert "network.wireguard.peer_public_key: not base64" in message
    assert "network.wireguard.endpoint" in message
    assert "network.wireguard.allowed_ips: '10.0.0.0/33' is not a network" in message


def test_a_vlan_needs_a_parent() -> None:
    message = refusal({"site": SITE, "network": {"vlan": {"id": 20}}})
    assert "needs a parent" in message


def test_flags_override_the_file_and_paths_follow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "answers.yaml"
    path.write_text("site: {id: a-site, name: A, timezone: UTC}\nextensions_csv: ext.csv\n")
    data = a.merge(a.read_file(path), a.from_flags({("site", "name"): "Berlin", ("region",): None}))
    answers = a.validate(data)
    assert (answers.site.id, answers.site.name) == ("a-site", "Berlin")
    assert answers.extensions_csv == tmp_path / "ext.csv"


def test_an_unreadable_answers_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("site: [unclosed\n")
    with pytest.raises(ProvisionError) as caught:
        a.read_file(tmp_path / "bad.yaml")
    assert caught.value.error_id == "answers-unreadable"
    with pytest.raises(ProvisionError, match="cannot read"):
        a.read_file(tmp_path / "missing.yaml")


def test_prompts_ask_only_what_is_missing() -> None:
    asked: list[str] = []
    replies = iter(["Berlin office", "", ""])

    def ask(question: str) -> str:
        asked.append(question)
        return next(replies)

    data = a.ask_missing({"site": {"id": "branch-berlin", "timezone": "UTC"}}, ask)
    assert asked == ["site name (for people): ", "region (blank: none): ",
                     "extensions CSV file (blank: none): "]  # fmt: skip
    assert a.validate(data).site.name == "Berlin office"
