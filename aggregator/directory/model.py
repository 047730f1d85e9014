"""The directory document: what an admin writes and the API validates field by field.

Cross-entity rules (overlaps, references, loops, caller IDs) live in validate.py.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
EXTENSION = r"^[0-9]{2,8}$"
PHONE_NUMBER = r"^\+?[0-9]{3,15}$"
DIAL_PREFIX = r"^\+?[0-9*#]{0,15}$"
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
REGION_MAX = 64


class Entity(BaseModel):
    """A directory entry: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ExtensionRange(Entity):
    """Consecutive extensions of equal length, ``first`` to ``last`` inclusive."""

    first: str = Field(pattern=EXTENSION)
    last: str = Field(pattern=EXTENSION)

    @model_validator(mode="after")
    def _ordered(self) -> ExtensionRange:
        if len(self.first) != len(self.last) or self.first > self.last:
            raise ValueError(f"range {self.first}-{self.last}: same length, first <= last")
        return self

    def label(self) -> str:
        return self.first if self.first == self.last else f"{self.first}-{self.last}"


class Site(Entity):
    """A site: where its PBX answers on the company network and which extensions it owns."""

    id: str = Field(pattern=SLUG)
    name: str = Field("", max_length=128)
    profile: Literal["branch", "hotel", "sim-gateway"] = "branch"
    sip_address: str = Field(pattern=r"^[A-Za-z0-9.:\[\]-]{1,255}$")
    timezone: str = "UTC"
    code: str | None = Field(None, pattern=r"^[0-9]{1,4}$", description="for prefix dialling")
    region: str | None = Field(None, description="for grouping sites, e.g. eu-central")
    extensions: tuple[str, ...] = Field((), description="explicit extensions")
    ranges: tuple[ExtensionRange, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @field_validator("region", mode="before")
    @classmethod
    def _region(cls, value: object) -> object:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            return value
        return check_region(value)

    @field_validator("extensions")
    @classmethod
    def _extensions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [e for e in value if not re.fullmatch(EXTENSION, e)]
        if bad:
            raise ValueError(f"extensions are 2 to 8 digits: {bad[:5]}")
        return value

    def all_ranges(self) -> list[ExtensionRange]:
        """Explicit extensions and ranges together."""
        return [*self.ranges, *(ExtensionRange(first=e, last=e) for e in self.extensions)]


def check_region(value: str) -> str:
    """A region as given, or ValueError: printable text, up to 64 characters, that starts
    with a letter or digit and does not end with a space."""
    if len(value) > REGION_MAX:
        raise ValueError(f"a region is at most {REGION_MAX} characters")
    if not value.isprintable() or not value[0].isalnum() or value != value.rstrip():
        raise ValueError(
            "a region is printable text that starts with a letter or digit and does not end "
            "with a space, e.g. eu-central"
        )
    return value


class Trunk(Entity):
    """A way out to the public network at one site, with the numbers it may present."""

    id: str = Field(pattern=SLUG)
    site: str
    kind: Literal["sip", "gsm"] = "sip"
    numbers: tuple[str, ...] = Field(min_length=1, description="caller IDs this trunk owns")
    caller_id: str | None = Field(None, description="presented by default; first number if unset")

    @field_validator("numbers")
    @classmethod
    def _numbers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [n for n in value if not re.fullmatch(PHONE_NUMBER, n)]
        if bad:
            raise ValueError(f"numbers are 3 to 15 digits with an optional +: {bad[:5]}")
        return value

    def presented(self) -> str:
        return self.caller_id or self.numbers[0]


class Window(Entity):
    """A weekly time window in the calling site's time zone; ``end`` before ``start`` wraps."""

    days: tuple[Day, ...] = DAYS
    start: str = Field("00:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    end: str = Field("24:00", pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")


class Target(Entity):
    """One place a rule sends a call: another site (over the VPN) or a trunk."""

    site: str | None = None
    trunk: str | None = None
    cost: int = Field(0, ge=0)
    strip: int = Field(0, ge=0, le=15, description="leading digits removed (trunks only)")
    prepend: str = Field("", pattern=DIAL_PREFIX)
    caller_id: str | None = Field(None, description="number presented (trunks only)")

    @model_validator(mode="after")
    def _one_kind(self) -> Target:
        if (self.site is None) == (self.trunk is None):
            raise ValueError("a target names exactly one of site or trunk")
        if self.site is not None and (self.strip or self.prepend or self.caller_id):
            raise ValueError("strip, prepend and caller_id apply to trunk targets only")
        return self

    def label(self) -> str:
        return f"site {self.site}" if self.site is not None else f"trunk {self.trunk}"


class Rule(Entity):
    """Dialled numbers starting with ``prefix`` go to ``targets``, cheapest first."""

    id: str = Field(pattern=SLUG)
    prefix: str = Field(pattern=DIAL_PREFIX)
    min_length: int = Field(1, ge=1, le=32)
    max_length: int = Field(32, ge=1, le=32)
    priority: int = Field(100, ge=0, description="lower is tried first")
    sites: tuple[str, ...] = Field((), description="sites the rule applies at; empty: all")
    windows: tuple[Window, ...] = Field((), description="when the rule applies; empty: always")
    targets: tuple[Target, ...] = Field(min_length=1)


class NumberingPlan(Entity):
    """How extensions of other sites are dialled."""

    flat: bool = Field(True, description="extensions are unique company-wide, dialled as is")
    site_prefix: str = Field("", pattern=r"^[0-9]{0,2}$", description="prefix + code + ext")


class Directory(Entity):
    """The whole routing directory."""

    plan: NumberingPlan = NumberingPlan()
    sites: tuple[Site, ...] = ()
    trunks: tuple[Trunk, ...] = ()
    rules: tuple[Rule, ...] = ()
