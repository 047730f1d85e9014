"""The routing table the PBX asks once per call: ``lookup(dialled, now) -> RouteDecision``.

Built from a compiled table (see aggregator/directory/compile.py for its keys) and
checked while it is built: a table that does not build is refused whole, so a running
table is always complete. Lookup order: own extensions; another site's extension (flat
plan); site prefix + site code + extension; then the rules that match the number and
are open at ``now`` in the site's time zone, by priority, longest prefix, id, each
rule's targets cheapest first. Extension ranges are kept per length as sorted start
and end lists, so a lookup is a dictionary access and a bisection.

Exceptions::

    RoutingTableError      the table is malformed or inconsistent; ``reason`` says where
"""

from __future__ import annotations

import bisect
import datetime
import itertools
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class RoutingTableError(Exception):
    """The table cannot be used; the message names the entry at fault."""


@dataclass(frozen=True)
class Target:
    """One place to send the call, in the order to try.

    ``extension``: ring ``number`` locally. ``site``: send ``number`` to ``address``
    (another site's PBX over the company network), presenting the caller's extension
    with ``caller_prefix`` in front; ``via`` names the remote trunk to use, if any.
    ``trunk``: dial ``number`` on ``trunk`` presenting ``caller_id``, or another number
    from ``owned`` (the only caller IDs the trunk may present).
    """

    kind: Literal["extension", "site", "trunk"]
    number: str
    site: str | None = None
    address: str | None = None
    caller_prefix: str = ""
    via: str | None = None
    trunk: str | None = None
    caller_id: str | None = None
    owned: frozenset[str] = field(default_factory=frozenset)
    rule: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class RouteDecision:
    """Where a dialled number goes; no targets means there is no route."""

    dialled: str
    targets: tuple[Target, ...]
    reason: str
    version: int

    @property
    def routed(self) -> bool:
        return bool(self.targets)


@dataclass(frozen=True)
class _Rule:
    id: str
    prefix: str
    min_length: int
    max_length: int
    priority: int
    windows: tuple[tuple[frozenset[int], int, int], ...]
    targets: tuple[dict[str, Any], ...]

    def matches(self, dialled: str, local: datetime.datetime) -> bool:
        if not dialled.startswith(self.prefix):
            return False
        if not self.min_length <= len(dialled) <= self.max_length:
            return False
        return not self.windows or any(_open(w, local) for w in self.windows)


def _open(window: tuple[frozenset[int], int, int], local: datetime.datetime) -> bool:
    days, start, end = window
    minute = local.hour * 60 + local.minute
    if start <= end:
        return local.weekday() in days and start <= minute < end
    if minute >= start:
        return local.weekday() in days
    return (local.weekday() - 1) % 7 in days and minute < end


class _Ranges:
    """Non-overlapping extension ranges of one owner set, per extension length."""

    def __init__(self, spans: Iterable[tuple[str, str, str]]) -> None:
        by_length: dict[int, list[tuple[int, int, str]]] = {}
        for first, last, owner in spans:
            by_length.setdefault(len(first), []).append((int(first), int(last), owner))
        self._index: dict[int, tuple[list[int], list[int], list[str]]] = {}
        for width, items in by_length.items():
            items.sort()
            for before, after in itertools.pairwise(items):
                if after[0] <= before[1]:
                    raise RoutingTableError(
                        f"ext:{after[2]}:{after[0]:0{width}d} overlaps ext:{before[2]}:"
                        f"{before[0]:0{width}d}"
                    )
            self._index[width] = (
                [i[0] for i in items],
                [i[1] for i in items],
                [i[2] for i in items],
            )

    def owner(self, number: str) -> str | None:
        found = self._index.get(len(number))
        if found is None or not number.isdigit():
            return None
        starts, ends, owners = found
        value = int(number)
        at = bisect.bisect_right(starts, value) - 1
        return owners[at] if at >= 0 and value <= ends[at] else None


class RoutingTable:
    """An immutable, validated routing table for one site."""

    def __init__(self, version: int, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping) or not isinstance(data.get("meta"), dict):
            raise RoutingTableError("the table has no 'meta' entry")
        meta = data["meta"]
        self.version = version
        self.site = _text(meta, "site", "meta")
        self.flat = bool(meta.get("flat", True))
        self.site_prefix = _text(meta, "site_prefix", "meta", empty=True)
        try:
            self.zone = zoneinfo.ZoneInfo(_text(meta, "timezone", "meta"))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise RoutingTableError(f"meta: unknown time zone {meta.get('timezone')!r}") from None
        self.sites: dict[str, dict[str, str]] = {}
        self.trunks: dict[str, dict[str, Any]] = {}
        spans, rules = self._read_entries(data)
        self._check_references(spans, rules)
        self._company: _Ranges | None = None
        self._site_ranges: dict[str, _Ranges] = {}
        if self.flat:
            self._company = _Ranges(s for items in spans.values() for s in items)
        else:
            self._site_ranges = {owner: _Ranges(items) for owner, items in spans.items()}
        self._codes = {s["code"]: name for name, s in self.sites.items() if s["code"]}
        self._rules = sorted(rules, key=lambda r: (r.priority, -len(r.prefix), r.id))
        self.extensions = sum(
            int(last) - int(first) + 1 for v in spans.values() for first, last, _ in v
        )

    def _read_entries(
        self, data: Mapping[str, Any]
    ) -> tuple[dict[str, list[tuple[str, str, str]]], list[_Rule]]:
        spans: dict[str, list[tuple[str, str, str]]] = {}
        rules: list[_Rule] = []
        for key, value in data.items():
            kind, _, name = key.partition(":")
            if kind == "site":
                self.sites[name] = _site(key, value)
            elif kind == "ext":
                owner, first, last = _extension(key, value)
                spans.setdefault(owner, []).append((first, last, owner))
            elif kind == "trunk":
                self.trunks[name] = _trunk(key, value)
            elif kind == "rule":
                rules.append(_rule(name, key, value))
            elif kind != "meta":
                raise RoutingTableError(f"{key}: unknown entry kind {kind!r}")
        return spans, rules

    def _check_references(self, spans: Mapping[str, Any], rules: list[_Rule]) -> None:
        if self.site not in self.sites:
            raise RoutingTableError(f"meta: site {self.site!r} has no site entry")
        for owner in spans:
            if owner not in self.sites:
                raise RoutingTableError(f"ext:{owner}: extensions of unknown site {owner!r}")
        for rule in rules:
            for target in rule.targets:
                if "trunk" in target and target["trunk"] not in self.trunks:
                    raise RoutingTableError(f"rule:{rule.id}: unknown trunk {target['trunk']!r}")
                if "site" in target and target["site"] not in self.sites:
                    raise RoutingTableError(f"rule:{rule.id}: unknown site {target['site']!r}")
                caller_id = target.get("caller_id")
                if "trunk" in target and caller_id not in self.trunks[target["trunk"]]["numbers"]:
                    raise RoutingTableError(
                        f"rule:{rule.id}: trunk {target['trunk']} does not own {caller_id!r}"
                    )

    def lookup(self, dialled: str, now: datetime.datetime | None = None) -> RouteDecision:
        """Where ``dialled`` goes at ``now`` (aware; default: the current time)."""
        if self._owns(self.site, dialled):
            return self._decision(dialled, [Target("extension", dialled)], "local extension")
        if self._company is not None:
            owner = self._company.owner(dialled)
            if owner is not None:
                return self._decision(dialled, [self._to_site(owner, dialled)], "flat plan")
        prefixed = self._by_prefix(dialled)
        if prefixed is not None:
            return prefixed
        local = (now or datetime.datetime.now(datetime.UTC)).astimezone(self.zone)
        targets: list[Target] = []
        for rule in self._rules:
            if rule.matches(dialled, local):
                targets.extend(self._rule_target(t, dialled, rule.id) for t in rule.targets)
        return self._decision(dialled, _unique(targets), "rules" if targets else "no route")

    def peer_sites(self) -> frozenset[str]:
        """Other sites this site's rules can send calls to (the peers worth probing)."""
        return frozenset(t["site"] for rule in self._rules for t in rule.targets if "site" in t) - {
            self.site
        }

    def site_name(self, site: str) -> str:
        """The display name of ``site`` (its id when the directory gives none)."""
        entry = self.sites.get(site)
        return (entry or {}).get("name") or site

    def _by_prefix(self, dialled: str) -> RouteDecision | None:
        if not self.site_prefix or not dialled.startswith(self.site_prefix):
            return None
        rest = dialled[len(self.site_prefix) :]
        for width in range(1, 5):
            site = self._codes.get(rest[:width])
            if site is None:
                continue
            extension = rest[width:]
            if not self._owns(site, extension):
                return self._decision(dialled, [], f"site {site} has no extension {extension}")
            if site == self.site:
                return self._decision(dialled, [Target("extension", extension)], "local extension")
            return self._decision(dialled, [self._to_site(site, extension)], "site prefix")
        return None

    def _owns(self, site: str, number: str) -> bool:
        if self._company is not None:
            return self._company.owner(number) == site
        ranges = self._site_ranges.get(site)
        return ranges is not None and ranges.owner(number) == site

    def _to_site(self, site: str, number: str, via: str | None = None) -> Target:
        caller_prefix = "" if self.flat else self.site_prefix + self.sites[self.site]["code"]
        address = self.sites[site]["address"]
        return Target(
            "site", number, site=site, address=address, caller_prefix=caller_prefix, via=via
        )

    def _rule_target(self, target: Mapping[str, Any], dialled: str, rule: str) -> Target:
        number = target.get("prepend", "") + dialled[target.get("strip", 0) :]
        if "site" in target:
            hop = self._to_site(target["site"], number, target.get("via"))
            return replace(hop, caller_id=target.get("caller_id"), rule=rule)
        trunk = self.trunks[target["trunk"]]
        return Target(
            "trunk",
            number,
            trunk=target["trunk"],
            caller_id=target["caller_id"],
            owned=frozenset(trunk["numbers"]),
            rule=rule,
        )

    def _decision(self, dialled: str, targets: list[Target], reason: str) -> RouteDecision:
        return RouteDecision(dialled, tuple(targets), reason, self.version)


def _unique(targets: list[Target]) -> list[Target]:
    return list(dict.fromkeys(targets))


def _text(value: Mapping[str, Any], name: str, where: str, empty: bool = False) -> str:
    found = value.get(name)
    if not isinstance(found, str) or (not found and not empty):
        raise RoutingTableError(f"{where}: {name} must be a non-empty string")
    return found


def _site(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise RoutingTableError(f"{key}: must be a map")
    return {
        "address": _text(value, "address", key),
        "code": _text(value, "code", key, empty=True),
        "name": _text(value, "name", key, empty=True),
    }


def _extension(key: str, value: Any) -> tuple[str, str, str]:
    parts = key.split(":")
    if len(parts) != 3 or not isinstance(value, str):
        raise RoutingTableError(f"{key}: must be ext:<site>:<first> -> last")
    _, owner, first = parts
    if not (first.isdigit() and value.isdigit() and len(first) == len(value) and first <= value):
        raise RoutingTableError(f"{key}: bad extension range {first}-{value}")
    return owner, first, value


def _trunk(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("numbers"), list):
        raise RoutingTableError(f"{key}: must be a map with a numbers list")
    return {"numbers": frozenset(value["numbers"]), "caller_id": value.get("caller_id")}


def _rule(name: str, key: str, value: Any) -> _Rule:
    if not isinstance(value, dict):
        raise RoutingTableError(f"{key}: must be a map")
    try:
        windows = tuple(
            (frozenset(DAYS.index(d) for d in days), _minutes(start), _minutes(end))
            for days, start, end in value["windows"]
        )
        targets = tuple(_checked_target(key, t) for t in value["targets"])
        return _Rule(
            name,
            str(value["prefix"]),
            int(value["min_length"]),
            int(value["max_length"]),
            int(value["priority"]),
            windows,
            targets,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise RoutingTableError(f"{key}: malformed rule ({type(err).__name__}: {err})") from None


def _checked_target(key: str, target: Any) -> dict[str, Any]:
    if not isinstance(target, dict) or ("site" in target) == ("trunk" in target):
        raise RoutingTableError(f"{key}: a target names exactly one of site or trunk")
    trunk = "trunk" in target
    if trunk and not ("prepend" in target and "strip" in target):
        raise RoutingTableError(f"{key}: trunk target needs strip and prepend")
    if not isinstance(target.get("prepend", ""), str) or not isinstance(
        target.get("strip", 0), int
    ):
        raise RoutingTableError(f"{key}: strip must be a number and prepend a string")
    return dict(target)


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)
