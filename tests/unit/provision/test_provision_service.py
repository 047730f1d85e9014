"""Provisioning writes: checked first, nothing half-applied, a re-run changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.provision import ProvisionError
from appliance.provision.answers import validate
from appliance.provision.service import Paths, provision
from drivers.net.netlink import NetlinkDriver

MODEM = {"port": "/dev/serial/by-id/usb-Quectel_EC25-if02", "profile": "quectel-ec25",
         "identity": {"model": "EC25", "imei": "861234567890123"},
         "sim": {"pin_state": "READY", "iccid": "8949000000000000001"},
         "network": {"registered": True}}  # fmt: skip


def box(tmp_path: Path, profile: str = "sim-gateway") -> Paths:
    config = tmp_path / "etc" / "appliance.yaml"
    config.parent.mkdir()
    config.write_text(f"site_id: unset\nprofile: {profile}\ndata_dir: {tmp_path / 'data'}\n")
    return Paths(config, None, tmp_path / "networkd", tmp_path / "etc" / "wireguard")


def answers(tmp_path: Path, rows: str = "1001,Reception,\n1002,Sales,\n") -> Any:
    csv = tmp_path / "ext.csv"
    csv.write_text("number,name,password\n" + rows)
    return validate({"site": {"id": "gw-hamburg", "name": "Hamburg", "timezone": "Europe/Berlin"},
                     "extensions_csv": str(csv)})  # fmt: skip


def scan(_patterns: tuple[str, ...]) -> list[dict[str, Any]]:
    return [MODEM, {"port": "/dev/ttyUSB9", "error": "no answer to AT"}]


def test_site_extensions_and_modems_land_in_one_drop_in_and_a_rerun_changes_nothing(
    tmp_path: Path,
) -> None:
    paths = box(tmp_path)
    first = provision(answers(tmp_path), paths, NetlinkDriver(), scan)
    drop_in = paths.config.parent / "conf.d" / "40-provision.yaml"
    assert first.changed == [str(drop_in)]
    assert drop_in.stat().st_mode & 0o777 == 0o640
    written = yaml.safe_load(drop_in.read_text())
    assert written["site"] == {"name": "Hamburg", "timezone": "Europe/Berlin", "region": ""}
    assert written["gateway"]["modems"] == [
        {"channel": "gsm-1", "port": MODEM["port"], "imei": "861234567890123"}
    ]
    assert first.settings.site_id == "gw-hamburg"
    assert [e.number for e in first.settings.sip.extensions] == ["1001", "1002"]
    again = provision(answers(tmp_path), paths, NetlinkDriver(), scan)
    assert again.changed == []
    assert again.settings.sip.extensions == first.settings.sip.extensions


def test_modems_are_listed_but_not_configured_on_a_branch(tmp_path: Path) -> None:
    outcome = provision(answers(tmp_path), box(tmp_path, "branch"), NetlinkDriver(), scan)
    assert outcome.modems[0]["identity"]["imei"] == "861234567890123"
    assert outcome.settings.gateway.modems == ()


def test_a_bad_csv_row_writes_nothing(tmp_path: Path) -> None:
    paths = box(tmp_path)
    with pytest.raises(ProvisionError, match="line 3: number"):
        provision(answers(tmp_path, "1001,A,\nabc,B,\n"), paths, NetlinkDriver(), scan)
    assert not (paths.config.parent / "conf.d").exists()


def test_answers_that_break_the_config_write_nothing(tmp_path: Path) -> None:
    paths = box(tmp_path)
    conf_d = paths.config.parent / "conf.d"
    conf_d.mkdir()
    (conf_d / "60-queues.yaml").write_text(
        "contact: {queues: {support: {number: '700', agents: ['1009']}}}\n"
    )
    with pytest.raises(ProvisionError) as caught:
        provision(answers(tmp_path), paths, NetlinkDriver(), scan)
    assert caught.value.error_id == "config-invalid"
    assert "1009 are not in sip.extensions" in caught.value.message
    assert sorted(p.name for p in conf_d.iterdir()) == ["60-queues.yaml"]


def test_a_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "nope.yaml", None, tmp_path / "n", tmp_path / "w")
    with pytest.raises(ProvisionError) as caught:
        provision(answers(tmp_path), paths, NetlinkDriver(), scan)
    assert (caught.value.error_id, caught.value.message) == (
        "config-unreadable",
        f"{tmp_path / 'nope.yaml'}: no such file",
    )


def test_a_modem_the_running_appliance_holds_keeps_its_entry(tmp_path: Path) -> None:
    paths = box(tmp_path)
    provision(answers(tmp_path), paths, NetlinkDriver(), scan)

    def busy(_patterns: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{"port": MODEM["port"], "error": "port busy", "busy": True}]

    again = provision(answers(tmp_path), paths, NetlinkDriver(), busy)
    assert again.changed == []
    assert [m.imei for m in again.settings.gateway.modems] == ["861234567890123"]


def test_a_busy_port_never_configured_before_is_not_invented(tmp_path: Path) -> None:
    def busy(_patterns: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{"port": "/dev/ttyUSB3", "error": "port busy", "busy": True}]

    outcome = provision(answers(tmp_path), box(tmp_path), NetlinkDriver(), busy)
    assert outcome.settings.gateway.modems == ()
