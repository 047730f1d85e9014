"""The answers to provisioning: a YAML file, command-line flags over it, prompts for the rest.

Flags and prompts produce the same nested mapping as the file; it is validated once into
frozen ``Answers``. Relative paths in a file are taken from the file's folder.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from appliance.provision import ProvisionError
from appliance.settings import zone_name
from drivers.modem.tools import DEFAULT_PORTS
from drivers.net import wgkeys

IFNAME = r"^[A-Za-z0-9_.-]{1,15}$"


class Answer(BaseModel):
    """Base of every answers section: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _cidrs(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        try:
            ipaddress.ip_interface(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an address with a prefix, e.g. 10.1.0.10/24"
            ) from None
    return values


class SiteAnswers(Answer):
    """Who this box is: HQ's site id, a name for people, its time zone and region."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str = Field(min_length=1, max_length=100)
    timezone: str = "UTC"
    region: str = Field("", pattern=r"^[A-Za-z0-9_.-]{0,64}$")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return zone_name(value)


class LanAnswers(Answer):
    """The wired LAN device: addresses or DHCP (it carries the VLAN)."""

    name: str = Field(pattern=IFNAME)
    addresses: tuple[str, ...] = ()
    dhcp: bool = False

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return _cidrs(values)


class VlanAnswers(Answer):
    """The voice VLAN on the LAN device (``parent`` defaults to the LAN's name)."""

    id: int = Field(ge=1, le=4094)
    parent: str | None = Field(None, pattern=IFNAME)
    name: str | None = Field(None, pattern=IFNAME)
    addresses: tuple[str, ...] = ()

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return _cidrs(values)


class WireGuardAnswers(Answer):
    """The tunnel to HQ: this end's address, HQ's key, endpoint and the networks behind it."""

    interface: str = Field("wg-hq", pattern=IFNAME)
    address: str
    peer_public_key: str
    endpoint: str = Field(pattern=r"^.+:[0-9]{1,5}$")
    allowed_ips: tuple[str, ...] = Field(min_length=1)
    keepalive_s: int = Field(25, ge=0, le=3600)
    private_key_file: Path | None = None
    private_key: str | None = Field(None, repr=False)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _cidrs((value,))[0]

    @field_validator("peer_public_key", "private_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        return None if value is None else wgkeys.check_key(value)

    @field_validator("allowed_ips")
    @classmethod
    def _networks(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not a network, e.g. 10.0.0.0/8") from None
        return values


class NetworkAnswers(Answer):
    """LAN, voice VLAN and the tunnel to HQ; each optional."""

    lan: LanAnswers | None = None
    vlan: VlanAnswers | None = None
    wireguard: WireGuardAnswers | None = None

    @model_validator(mode="after")
    def _vlan_parent(self) -> NetworkAnswers:
        if self.vlan is not None and self.vlan.parent is None and self.lan is None:
            raise ValueError("network.vlan needs a parent (or network.lan, its default parent)")
        return self


class ModemAnswers(Answer):
    """Whether and where to look for modems."""

    scan: bool = True
    ports: tuple[str, ...] = DEFAULT_PORTS


class Answers(Answer):
    """Everything provisioning asks."""

    site: SiteAnswers
    network: NetworkAnswers = NetworkAnswers()
    extensions_csv: Path | None = None
    modems: ModemAnswers = ModemAnswers()


def read_file(path: Path) -> dict[str, Any]:
    """The answers file as a mapping, its relative paths taken from its folder."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ProvisionError("answers-unreadable", f"cannot read {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ProvisionError("answers-unreadable", f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ProvisionError("answers-unreadable", f"{path}: the top level must be a mapping")
    base = path.parent
    for keys in (("extensions_csv",), ("network", "wireguard", "private_key_file")):
        _resolve(data, keys, base)
    return data


def _resolve(data: dict[str, Any], keys: tuple[str, ...], base: Path) -> None:
    node: Any = data
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and isinstance(node.get(keys[-1]), str):
        node[keys[-1]] = str(base / node[keys[-1]])


def merge(below: Mapping[str, Any], above: Mapping[str, Any]) -> dict[str, Any]:
    """``above`` over ``below``, mappings merged key by key."""
    merged = dict(below)
    for key, value in above.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def validate(data: Mapping[str, Any]) -> Answers:
    """``data`` as Answers; every problem named by its key, in one ProvisionError."""
    try:
        return Answers.model_validate(data)
    except pydantic.ValidationError as err:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'answers'}: {_message(e)}"
                    for e in err.errors()]  # fmt: skip
        raise ProvisionError("answers-invalid", "; ".join(problems)) from None


def _message(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return "missing: give it in the answers file, by flag or at the prompt"
    if error["type"] == "extra_forbidden":
        return "unknown key: check its spelling (docs/provision.md lists the answers)"
    return re.sub(r"^String should match pattern '(.*)'$", r"should match \1", message)


Ask = Callable[[str], str]

QUESTIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("site", "id"), "site id (as HQ knows it, e.g. branch-berlin)"),
    (("site", "name"), "site name (for people)"),
    (("site", "timezone"), "time zone (IANA, e.g. Europe/Berlin)"),
    (("site", "region"), "region (blank: none)"),
    (("extensions_csv",), "extensions CSV file (blank: none)"),
)


def ask_missing(data: Mapping[str, Any], ask: Ask) -> dict[str, Any]:
    """``data`` with the questions it leaves open answered through ``ask`` (blank: skipped)."""
    answered: dict[str, Any] = dict(data)
    for keys, question in QUESTIONS:
        if _get(answered, keys) is None:
            reply = ask(f"{question}: ").strip()
            if reply:
                answered = merge(answered, _nest(keys, reply))
    return answered


def _get(data: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    node: Any = data
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _nest(keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    nested: dict[str, Any] = {keys[-1]: value}
    for key in reversed(keys[:-1]):
        nested = {key: nested}
    return nested


def from_flags(pairs: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    """The flags given (key path -> value, None when not given) as a nested mapping."""
    nested: dict[str, Any] = {}
    for keys, value in pairs.items():
        if value is not None and value != []:
            nested = merge(nested, _nest(keys, value))
    return nested
