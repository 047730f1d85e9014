"""API tokens are unambiguous at load: scope, role and secret are each clear, or refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aggregator.settings import AggregatorSettings
from appliance.settings import ApplianceSettings
from drivers.daemon.config_layers import ConfigError, collect_layers, load_settings
from tests.procs import write_yaml

APPLIANCE = {"site_id": "branch-1", "profile": "branch", "data_dir": "/var/lib/callmesh"}
SECRET, OTHER = "s" * 24, "o" * 24


def load_hq(tmp_path: Path, *tokens: dict[str, Any]) -> AggregatorSettings:
    path = write_yaml(tmp_path / "hq.yaml", {"data_dir": "/x", "api": {"tokens": list(tokens)}})
    return load_settings(AggregatorSettings, collect_layers(path))


def problem(tmp_path: Path, *tokens: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_hq(tmp_path, *tokens)
    (found,) = caught.value.problems
    assert found.source == str(tmp_path / "hq.yaml")
    return str(found)


def test_sites_without_a_role_is_refused_naming_both_keys(tmp_path: Path) -> None:
    text = problem(tmp_path, {"name": "berlin", "token": SECRET, "sites": ["berlin"]})
    assert "key 'api.tokens.0'" in text
    assert "token 'berlin' has 'sites' but no 'role'; set role: site-viewer" in text


@pytest.mark.parametrize("role", ["admin", "hq-viewer"])
def test_sites_on_a_role_that_reads_every_site_is_refused(tmp_path: Path, role: str) -> None:
    text = problem(tmp_path, {"name": "t", "token": SECRET, "role": role, "sites": ["berlin"]})
    assert f"'sites' only applies to role site-viewer (role {role} reads every site)" in text


def test_a_site_viewer_needs_its_sites(tmp_path: Path) -> None:
    text = problem(tmp_path, {"name": "t", "token": SECRET, "role": "site-viewer"})
    assert "role site-viewer needs 'sites'" in text


def test_unknown_role_lists_the_valid_ones(tmp_path: Path) -> None:
    text = problem(tmp_path, {"name": "t", "token": SECRET, "role": "operator"})
    assert "key 'api.tokens.0.role'" in text
    assert "'admin', 'hq-viewer' or 'site-viewer'" in text


def test_two_tokens_with_one_secret_are_refused(tmp_path: Path) -> None:
    text = problem(
        tmp_path,
        {"name": "a", "token": SECRET, "role": "admin"},
        {"name": "b", "token": SECRET, "role": "site-viewer", "sites": ["berlin"]},
    )
    assert "key 'api.tokens'" in text
    assert "tokens 'a' and 'b' are the same secret" in text


def test_two_tokens_with_one_name_are_refused(tmp_path: Path) -> None:
    text = problem(tmp_path, {"name": "a", "token": SECRET}, {"name": "a", "token": OTHER})
    assert "token names must be unique; repeated: a" in text


def test_a_site_viewer_with_sites_loads_scoped(tmp_path: Path) -> None:
    settings = load_hq(
        tmp_path, {"name": "b", "token": SECRET, "role": "site-viewer", "sites": ["berlin"]}
    )
    assert settings.api.tokens[0].sites == ("berlin",)


def test_appliance_refuses_a_repeated_secret_and_an_unknown_role(tmp_path: Path) -> None:
    tokens = [
        {"name": "a", "token": SECRET, "role": "operator"},
        {"name": "b", "token": SECRET},
        {"name": "c", "token": OTHER, "role": "hq-viewer"},
    ]
    path = write_yaml(tmp_path / "a.yaml", {**APPLIANCE, "api": {"tokens": tokens}})
    with pytest.raises(ConfigError) as caught:
        load_settings(ApplianceSettings, collect_layers(path))
    lines = [str(p) for p in caught.value.problems]
    assert any("key 'api.tokens.2.role'" in line and "'viewer'" in line for line in lines)
    # The list is checked as a whole once every entry is valid.
    path = write_yaml(tmp_path / "a.yaml", {**APPLIANCE, "api": {"tokens": tokens[:2]}})
    with pytest.raises(ConfigError, match="tokens 'a' and 'b' are the same secret"):
        load_settings(ApplianceSettings, collect_layers(path))
