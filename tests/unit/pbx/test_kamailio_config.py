"""Kamailio config rendering and the subscriber table it authenticates against."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from drivers.sip.errors import ConfigValueError
from drivers.sip.kamailio import load_route_secret, write_subscribers
from drivers.sip.kamailio_config import (
    KamailioConfig,
    LocalRoutes,
    Registration,
    Subscriber,
    render_config,
)


def _config(**changes: object) -> KamailioConfig:
    base = {
        "domain": "branch.example",
        "sip_host": "127.0.0.1",
        "sip_port": 5070,
        "evapi_port": 5071,
        "ng_port": 5072,
        "subscriber_db": "/var/lib/callmesh/pbx/run/subscriber.sqlite",
        "route_secret": "5e" * 32,
        "module_path": "/usr/lib/x86_64-linux-gnu/kamailio/modules/",
    }
    return KamailioConfig(**{**base, **changes})  # type: ignore[arg-type]


def test_rendered_config_has_every_placeholder_filled() -> None:
    text = render_config(_config(fr_inv_timer_ms=15000))
    assert "@@" not in text.replace("@@branch.example", "")
    assert "listen=udp:127.0.0.1:5070" in text
    assert 'modparam("tm", "fr_inv_timer", 15000)' in text
    assert 'modparam("evapi", "bind_addr", "127.0.0.1:5071")' in text
    assert 'rtpengine_sock", "udp:127.0.0.1:5072"' in text
    assert '"sip:" + $rU + "@branch.example"' in text
    assert '$var(record) = "yes";' in text
    assert "record-call=$var(record)" in text


def test_pike_exemptions_render_as_source_checks_and_reject_non_addresses() -> None:
    text = render_config(_config(pike_exempt=("127.0.0.5", "10.0.0.1")))
    assert 'if ($si == "127.0.0.5" || $si == "10.0.0.1") {' in text
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        render_config(_config(pike_exempt=('1.2.3.4" || 1',)))


def test_recording_can_be_switched_off() -> None:
    assert '$var(record) = "no";' in render_config(_config(record=False))


def test_credentials_table_is_replaced_with_plain_passwords(tmp_path: Path) -> None:
    db = tmp_path / "subscriber.sqlite"
    config = _config(domain="d.example")
    write_subscribers(db, [Subscriber("1001", "pw-1'; DROP TABLE x", "A")], config)
    write_subscribers(db, [Subscriber("1002", "pw-2"), Subscriber("1003", "pw\t3")], config)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT key_name, key_type, value_type, key_value, expires FROM credentials"
        ).fetchall()
        versions = dict(conn.execute("SELECT table_name, table_version FROM version"))
    assert rows == [("1002", 0, 0, "pw-2", 0), ("1003", 0, 0, "pw\t3", 0)]
    assert versions == {
        "version": 1, "uacreg": 5, "local_routes": 2, "local_recording": 2,
        "trunk_routes": 2, "trunk_callers": 2, "credentials": 2,
    }  # fmt: skip


def test_local_routes_fill_the_htable_tables_as_strings(tmp_path: Path) -> None:
    db = tmp_path / "subscriber.sqlite"
    routes = LocalRoutes(
        (("1002", '{"action":"extension"}'),), (("1001", "never"),),
        (("re:0", "^0[0-9]+$"),), (("1001", "2"),),
    )  # fmt: skip
    write_subscribers(db, [], _config(), routes)
    write_subscribers(db, [], _config(), routes)
    with sqlite3.connect(db) as conn:
        answers = conn.execute(
            "SELECT key_name, key_type, value_type, key_value, expires FROM local_routes"
        ).fetchall()
        callers = conn.execute("SELECT key_name, key_value FROM local_recording").fetchall()
        trunk = conn.execute("SELECT key_name, key_value FROM trunk_routes").fetchall()
        ranks = conn.execute("SELECT key_name, key_value FROM trunk_callers").fetchall()
    assert answers == [("1002", 0, 0, '{"action":"extension"}', 0)]
    assert callers == [("1001", "never")]
    assert (trunk, ranks) == ([("re:0", "^0[0-9]+$")], [("1001", "2")])


def test_local_routes_with_a_control_character_are_refused(tmp_path: Path) -> None:
    routes = LocalRoutes((("1002", "a\nb"),))
    with pytest.raises(ConfigValueError, match="control character"):
        write_subscribers(tmp_path / "s.sqlite", [], _config(), routes)


def test_trunk_registrations_fill_the_uacreg_table(tmp_path: Path) -> None:
    db = tmp_path / "subscriber.sqlite"
    reg = Registration("carrier", "branch-7", "pw", "carrier.example", "192.0.2.10:5060", 300)
    config = _config(domain="d.example", registrations=(reg,))
    write_subscribers(db, [], config)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT l_uuid, r_username, r_domain, auth_proxy, expires FROM uacreg"
        ).fetchall()
    assert rows == [("carrier", "branch-7", "carrier.example", "sip:192.0.2.10:5060", 300)]
    assert "#!define WITH_REGISTRATIONS" in render_config(config)
    assert "#!define WITH_REGISTRATIONS" not in render_config(_config())


def test_proxy_only_mode_leaves_rtpengine_out() -> None:
    assert "#!define WITH_MEDIA" in render_config(_config())
    assert "#!define WITH_MEDIA" not in render_config(_config(anchor_media=False))


def test_max_calls_renders_the_cap_and_retry_after_and_zero_leaves_it_out() -> None:
    text = render_config(_config(max_calls=250, retry_after_s=12))
    assert "#!define WITH_MAX_CALLS" in text
    assert "if ($var(calls) >= 250) {" in text
    assert 'append_to_reply("Retry-After: 12\\r\\n");' in text
    assert "#!define WITH_MAX_CALLS" not in render_config(_config())


def test_trunk_credentials_are_rendered_for_uac_auth() -> None:
    text = render_config(_config(trunk_credentials=(("branch-7", "carrier.example", "pw"),)))
    assert 'modparam("uac", "credential", "branch-7:carrier.example:pw")' in text
    assert "uac_auth()" in text


def test_scanner_user_agents_render_as_one_regex_and_reject_regex_syntax() -> None:
    text = render_config(_config(scanner_agents=("friendly-scanner", "sip.cli/2")))
    assert 'if ($ua =~ "(friendly-scanner|sip[.]cli[/]2)") {' in text
    assert "if (0) {" in render_config(_config(scanner_agents=()))
    with pytest.raises(ValueError, match="scanner user agent"):
        render_config(_config(scanner_agents=('x") || (1',)))


def test_scan_prefixes_render_as_an_international_number_test() -> None:
    text = render_config(_config(scan_prefixes=("+", "00")))
    assert '$rU =~ "^([+]|00)[0-9]{6,}$" || $tU =~ "^([+]|00)[0-9]{6,}$"' in text
    with pytest.raises(ValueError, match="scan prefix"):
        render_config(_config(scan_prefixes=("0|.",)))


def test_failed_authentication_limits_render_into_the_ban_check() -> None:
    text = render_config(_config(auth_fail_limit=4, auth_fail_window_s=30))
    assert "authfail=>size=8;autoexpire=30;" in text
    assert "if ($shtinc(authfail=>$si) >= 4) {" in text


def test_in_dialog_requests_are_relayed_only_within_known_dialogs() -> None:
    text = render_config(_config())
    within = text[text.index("route[WITHINDLG] {") :]
    assert within.index("is_known_dlg()") < within.index("loose_route()")
    assert 'remove_hf("Route");' in text


def test_no_route_runs_on_every_reply_and_only_own_byes_arm_the_bye_wait() -> None:
    """The BYE race of dlg.end_dlg is closed in routes an ordinary call never runs
    (docs/pbx.md, "Ending a dialog from the appliance")."""
    text = render_config(_config())
    assert re.search(r"^onreply_route\s*\{", text, re.MULTILINE) is None
    local = text[text.index("event_route[tm:local-request] {") :]
    local = local[: local.index("\n}\n")]
    assert text.count('t_on_reply("OWN_BYE")') == 1
    assert local.index('is_method("BYE")') < local.index('t_on_reply("OWN_BYE")')
    assert "onreply_route[OWN_BYE] {" in text


def test_config_without_a_route_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="route_secret"):
        render_config(_config(route_secret=""))


def test_route_secret_is_made_once_private_and_kept(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = load_route_secret(run_dir)
    assert len(first) == 64
    assert (run_dir / "route-secret").stat().st_mode & 0o777 == 0o600
    assert load_route_secret(run_dir) == first
    assert f'"{first}:" + $ci' in render_config(_config(route_secret=first))


def test_control_ports_render_on_loopback_whatever_the_sip_host() -> None:
    text = render_config(_config(sip_host="192.0.2.10", route_port=5073))
    assert "listen=udp:192.0.2.10:5070\nlisten=udp:127.0.0.1:5070\nmhomed=1\n" in text
    assert 'modparam("evapi", "bind_addr", "127.0.0.1:5071")' in text
    assert 'rtpengine_sock", "udp:127.0.0.1:5072"' in text
    assert '"http://127.0.0.1:5073/route?caller="' in text
    public = [line for line in text.splitlines() if "192.0.2.10" in line]
    assert public == [
        "listen=udp:192.0.2.10:5070",
        'modparam("uac", "reg_contact_addr", "192.0.2.10:5070")',
    ]


def test_a_loopback_sip_host_needs_no_second_socket() -> None:
    text = render_config(_config())
    assert text.count("listen=") == 1
    assert "mhomed=0" in text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("domain", 'evil.example"\nloadmodule "x.so'),
        ("domain", "$rU.example"),
        ("domain", "-bad.example"),
        ("domain", "a" * 64 + ".example"),
        ("sip_host", "10.0.0.1\nlisten=udp:0.0.0.0:5060"),
        ("sip_host", "pbx.example"),
    ],
)
def test_values_that_would_change_the_cfg_syntax_are_refused_by_name(
    field: str, value: str
) -> None:
    with pytest.raises(ConfigValueError, match=f"kamailio {field}: "):
        _config(**{field: value})


def test_quoted_values_are_escaped_and_control_characters_refused() -> None:
    odd = _config(subscriber_db='/data/o"dd\\dir/subscriber.sqlite',
                  trunk_credentials=(("u\\", "realm", 'p"w'),))  # fmt: skip
    text = render_config(odd)
    assert 'modparam("htable", "db_url", "sqlite:///data/o\\"dd\\\\dir/subscriber.sqlite")' in text
    assert 'modparam("uac", "credential", "u\\\\:realm:p\\"w")' in text
    with pytest.raises(ConfigValueError, match=r"kamailio\.cfg: .* control character"):
        render_config(_config(dispatcher_list="/run/dispatcher\n.list"))
