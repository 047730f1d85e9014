"""networkd files for VLAN and WireGuard, written only when they change; WireGuard keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.net import networkd, wgkeys
from drivers.net.plan import Link, Route, WireGuardPeer

# A pair made by `wg genkey | tee priv | wg pubkey`.
WG_PRIVATE = "WA+WoL3KytF1P0eVfFfh1YXJrdxHFofZ4mHNeFQmkXk="
WG_PUBLIC = "eKaCzAi6lLbNCLqI82fj/zumuCCxH3oXabCRdIGHZBg="


def office() -> networkd.NetworkdPlan:
    return networkd.NetworkdPlan(
        links=(Link("eth0"), Link("voice", "vlan", "eth0", 20, ("10.20.0.10/24",)),
               Link("wg-hq", "wireguard", addresses=("10.99.0.2/32",))),
        routes=(Route("10.0.0.0/8", device="wg-hq"),),
        wireguard={"wg-hq": WireGuardPeer(WG_PUBLIC, "hq.example:51820", ("10.0.0.0/8",),
                                          "/etc/callmesh/wireguard/wg-hq.key")},
        dhcp=frozenset({"eth0"}),
    )  # fmt: skip


def body(text: str) -> str:
    return text.split("\n", 1)[1]


def test_vlan_files_and_the_parent_that_carries_it() -> None:
    files = networkd.render(office())
    assert (
        body(files["10-callmesh-voice.netdev"])
        == "[NetDev]\nName=voice\nKind=vlan\n\n[VLAN]\nId=20\n"
    )
    assert body(files["10-callmesh-eth0.network"]) == (
        "[Match]\nName=eth0\n\n[Network]\nDHCP=yes\nVLAN=voice\n"
    )
    assert body(files["10-callmesh-voice.network"]) == (
        "[Match]\nName=voice\n\n[Network]\nDHCP=no\nAddress=10.20.0.10/24\n"
    )


def test_wireguard_files_name_the_key_file_not_the_key() -> None:
    files = networkd.render(office())
    assert body(files["10-callmesh-wg-hq.netdev"]) == (
        "[NetDev]\nName=wg-hq\nKind=wireguard\n\n"
        "[WireGuard]\nPrivateKeyFile=/etc/callmesh/wireguard/wg-hq.key\n\n"
        f"[WireGuardPeer]\nPublicKey={WG_PUBLIC}\nEndpoint=hq.example:51820\n"
        "AllowedIPs=10.0.0.0/8\nPersistentKeepalive=25\n")  # fmt: skip
    assert body(files["10-callmesh-wg-hq.network"]).endswith(
        "Address=10.99.0.2/32\n\n[Route]\nDestination=10.0.0.0/8\n"
    )


def test_write_touches_only_changed_files_and_removes_stale_ones(tmp_path: Path) -> None:
    (tmp_path / "50-other.network").write_text("[Match]\nName=eth9\n")
    files = networkd.render(office())
    assert networkd.write(tmp_path, files) == sorted(files)
    assert networkd.write(tmp_path, files) == []
    fewer = {k: v for k, v in files.items() if "wg-hq" not in k}
    assert networkd.write(tmp_path, fewer) == [
        "10-callmesh-wg-hq.netdev",
        "10-callmesh-wg-hq.network",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*fewer, "50-other.network"])


def test_wireguard_public_key_matches_wg_pubkey() -> None:
    assert wgkeys.public_of(WG_PRIVATE) == WG_PUBLIC


def test_generated_keys_are_clamped_and_distinct() -> None:
    import base64

    first, second = wgkeys.generate_private(), wgkeys.generate_private()
    assert first != second
    raw = base64.b64decode(first)
    assert (raw[0] & 7, raw[31] & 128, raw[31] & 64) == (0, 0, 64)
    assert len(wgkeys.public_of(first)) == 44


@pytest.mark.parametrize(("text", "why"), [("abc", "not base64"),
                                           ("YWJj", "decodes to 3 bytes")])  # fmt: skip
def test_bad_keys_are_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        wgkeys.check_key(text)


def test_a_key_is_made_once_then_kept_and_a_given_key_replaces_it(tmp_path: Path) -> None:
    from appliance.provision import network

    path = tmp_path / "wireguard" / "wg-hq.key"
    made = network.wanted_key(path, None)
    assert made is not None
    network.write_key(path, made)
    assert path.stat().st_mode & 0o077 in (0, 0o040)
    assert network.wanted_key(path, None) is None
    assert network.wanted_key(path, made) is None
    assert network.wanted_key(path, WG_PRIVATE) == WG_PRIVATE


def test_a_corrupt_key_file_is_reported_not_replaced(tmp_path: Path) -> None:
    from appliance.provision import ProvisionError, network

    path = tmp_path / "wg-hq.key"
    path.write_text("garbage\n")
    with pytest.raises(ProvisionError) as caught:
        network.wanted_key(path, None)
    assert caught.value.error_id == "wireguard-key-invalid"
    assert path.read_text() == "garbage\n"
