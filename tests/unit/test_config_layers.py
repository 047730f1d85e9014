"""Layered configuration: precedence, provenance in errors, one line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.settings import AggregatorSettings
from appliance.pbx.dialplan import DialPlan
from appliance.settings import ApplianceSettings
from drivers.daemon.config_layers import ConfigError, collect_layers, load_settings
from tests.procs import write_yaml

BASE = {"site_id": "branch-1", "profile": "branch", "data_dir": "/var/lib/callmesh"}


def load(tmp_path: Path, overrides: tuple[str, ...] = ()) -> ApplianceSettings:
    return load_settings(ApplianceSettings, collect_layers(tmp_path / "a.yaml", None, overrides))


def test_defaults_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yaml", BASE)
    settings = load(tmp_path)
    assert settings.http.port == 8080
    assert settings.log.format == "human"
    assert settings.store.map_size_mb == 1024


def test_drop_ins_override_the_file_in_name_order(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yaml", {**BASE, "http": {"host": "127.0.0.1", "port": 9000}})
    write_yaml(tmp_path / "conf.d" / "20-port.yaml", {"http": {"port": 9002}})
    write_yaml(tmp_path / "conf.d" / "10-port.yaml", {"http": {"port": 9001}})
    settings = load(tmp_path)
    assert settings.http.port == 9002
    assert settings.http.host == "127.0.0.1"


def test_command_line_overrides_win_over_drop_ins(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yaml", BASE)
    write_yaml(tmp_path / "conf.d" / "port.yaml", {"http": {"port": 9001}})
    settings = load(tmp_path, ("http.port=9100", "log.format=json"))
    assert settings.http.port == 9100
    assert settings.log.format == "json"


def test_settings_are_frozen(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yaml", BASE)
    settings = load(tmp_path)
    with pytest.raises(ValueError, match="frozen"):
        settings.http.port = 1  # type: ignore[misc]


def test_unknown_key_names_the_drop_in_and_the_valid_keys(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yaml", BASE)
    drop_in = write_yaml(tmp_path / "conf.d" / "50-typo.yaml", {"http": {"prot": 1}})
    with pytest.raises(ConfigError) as caught:
        load(tmp_path)
    assert str(caught.value) == (
        f"config error: {drop_in}: key 'http.prot': unknown key (valid keys here: host, port)"
    )


def test_wrong_type_names_file_key_and_value(tmp_path: Path) -> None:
    main = write_yaml(tmp_path / "a.yaml", {**BASE, "store": {"map_size_mb": "lots"}})
    with pytest.raises(ConfigError) as caught:
        load(tmp_path)
    (problem,) = caught.value.problems
    assert problem.source == str(main)
    assert problem.key == "store.map_size_mb"
    assert "'lots'" in problem.message


def test_every_problem_gets_its_own_line(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yaml", {"profile": "castle", "data_dir": "/x", "http": {"port": -1}})
    with pytest.raises(ConfigError) as caught:
        load(tmp_path)
    keys = sorted(p.key for p in caught.value.problems)
    assert keys == ["http.port", "profile", "site_id"]
    assert len(str(caught.value).splitlines()) == 3
    assert "required but not set" in str(caught.value)


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"a\.yaml: no such file$"):
        load(tmp_path)


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("site_id: x\nhttp: [unclosed\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line 3, column 1"):
        load(tmp_path)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load(tmp_path)


def test_malformed_override_says_what_is_expected(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yaml", BASE)
    with pytest.raises(ConfigError, match=r"expected KEY\.PATH=VALUE"):
        load(tmp_path, ("http.port",))


def test_http_host_must_be_an_ip_address(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yaml", {**BASE, "http": {"host": "localhost"}})
    with pytest.raises(ConfigError, match="must be an IP address"):
        load(tmp_path)


def test_aggregator_defaults_to_sqlite_in_its_data_dir(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "g.yaml", {"data_dir": str(tmp_path / "d")})
    settings = load_settings(AggregatorSettings, collect_layers(path))
    assert settings.database_url() == f"sqlite:///{tmp_path / 'd' / 'aggregator.db'}"
    assert settings.http.port == 8800


def test_example_configs_are_valid() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    for name in ("branch.yaml", "hotel.yaml", "sim-gateway.yaml"):
        layers = collect_layers(examples / name, conf_d=examples / "conf.d")
        assert load_settings(ApplianceSettings, layers).site_id
    layers = collect_layers(examples / "aggregator.yaml", conf_d=examples / "conf.d")
    assert load_settings(AggregatorSettings, layers).log.format == "json"


def test_example_branch_dial_plan_is_consistent() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    settings = load_settings(ApplianceSettings, collect_layers(examples / "branch.yaml"))
    DialPlan(settings.pbx.dialplan, [e.number for e in settings.sip.extensions])


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("sip.domain", 'pbx.example"\nloadmodule "evil.so', "is not a domain"),
        ("sip.domain", "$ru.example", "is not a domain"),
        ("pbx.sip_host", "10.0.0.1\nlisten=udp:0.0.0.0:5060", "is not an IPv4 address"),
        ("pbx.sip_host", "pbx.example", "is not an IPv4 address"),
        ("pbx.pike_exempt", ['10.0.0.1" || 1'], "does not appear to be an IPv4 or IPv6"),
    ],
)
def test_values_rendered_into_kamailio_cfg_are_checked_at_load(
    tmp_path: Path, key: str, value: object, why: str
) -> None:
    section, name = key.split(".")
    main = write_yaml(tmp_path / "a.yaml", {**BASE, section: {name: value}})
    with pytest.raises(ConfigError) as caught:
        load(tmp_path)
    (problem,) = caught.value.problems
    assert (problem.source, problem.key) == (str(main), key)
    assert why in problem.message


def test_example_hotel_dial_plan_and_rooms_are_consistent() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    settings = load_settings(ApplianceSettings, collect_layers(examples / "hotel.yaml"))
    DialPlan(settings.pbx.dialplan, [e.number for e in settings.sip.extensions])
    assert settings.pbx.enabled
    assert [r.room for r in settings.hotel.rooms] == ["0101", "0102", "0103"]
