"""`callmesh provision` on the command line: flags become answers; bad ones exit 2 untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli.main import main


def test_bad_flags_exit_2_with_the_error_id_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"site_id: x\nprofile: branch\ndata_dir: {tmp_path / 'data'}\n")
    code = main(["provision", "--config", str(config), "--no-input", "--no-modem-scan",
                 "--networkd-dir", str(tmp_path / "nd"), "--site-id", "branch-berlin",
                 "--site-name", "Berlin", "--timezone", "Europe/Berln",
                 "--wg-peer-key", "short"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("callmesh provision: site.timezone: unknown time zone 'Europe/Berln'")
    assert "network.wireguard.peer_public_key: not base64" in err
    assert "network.wireguard.address: missing" in err
    assert err.rstrip().endswith("[error_id: answers-invalid]")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["appliance.yaml"]


def test_flags_alone_provision_a_box_without_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(f"site_id: x\nprofile: branch\ndata_dir: {tmp_path / 'data'}\n")
    csv = tmp_path / "ext.csv"
    csv.write_text("number,name\n1001,Reception\n")
    args = ["provision", "--config", str(config), "--no-input", "--no-modem-scan", "--offline",
            "--networkd-dir", str(tmp_path / "nd"), "--site-id", "branch-berlin",
            "--site-name", "Berlin", "--region", "eu-central",
            "--extensions", str(csv)]  # fmt: skip
    main(args)
    out = capsys.readouterr().out
    assert "site branch-berlin (Berlin), UTC, region eu-central" in out
    assert "extensions: 1001 (passwords in" in out
    assert "[ok  ] config" in out
    main(args)
    assert "nothing changed" in capsys.readouterr().out
