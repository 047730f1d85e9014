"""Compile the directory into one routing table per site (pure: no I/O).

A table is a flat map of keys to JSON values, so tables diff and patch entry by entry
(drivers/sync/routing_changes.py) and a one-extension change is a one-entry update:

=======================  ===================================================================
key                      value
=======================  ===================================================================
meta                     {site, timezone, flat, site_prefix} - the site the table is for
site:<id>                {name, address, code} - every site
ext:<site>:<first>       last extension of the range (a single extension: first == last)
trunk:<id>               {kind, numbers[], caller_id} - this site's trunks only
rule:<id>                {prefix, min_length, max_length, priority, windows[[days, start,
                         end]], targets[]} - rules that apply at this site
=======================  ===================================================================

A rule target at the table's own site is dropped (a site never hands a call to itself);
a trunk of another site becomes a hop to that site naming the trunk (``via``), with the
digit manipulation applied by the calling site and the caller ID to ask for. The
``site:`` and ``ext:`` entries are the same in every table: they are compiled once as
``shared`` and each site's table is a ChainMap of its own entries over them, so N sites
cost neither N copies in memory nor N copies in the database.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aggregator.directory.model import Directory, Rule, Site, Target, Trunk

Table = Mapping[str, Any]


@dataclass(frozen=True)
class Compiled:
    """The entries every table shares, and each site's own entries."""

    shared: dict[str, Any]
    own: dict[str, dict[str, Any]]

    def table(self, site_id: str) -> Table:
        """The complete table of ``site_id``."""
        return ChainMap(self.own[site_id], self.shared)


def compile_tables(directory: Directory) -> dict[str, Table]:
    """Every site's routing table, keyed by site id."""
    compiled = compile_directory(directory)
    return {site_id: compiled.table(site_id) for site_id in compiled.own}


def compile_directory(directory: Directory) -> Compiled:
    """The directory compiled: shared entries once, and each site's own entries."""
    common: dict[str, Any] = {}
    for site in directory.sites:
        common[f"site:{site.id}"] = {
            "name": site.name,
            "address": site.sip_address,
            "code": site.code or "",
        }
        for r in _merged(site):
            common[f"ext:{site.id}:{r[0]}"] = r[1]
    trunks = {t.id: t for t in directory.trunks}
    own = {site.id: _site_entries(site, directory, trunks) for site in directory.sites}
    return Compiled(common, own)


def _site_entries(site: Site, directory: Directory, trunks: dict[str, Trunk]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    table["meta"] = {
        "site": site.id,
        "timezone": site.timezone,
        "flat": directory.plan.flat,
        "site_prefix": directory.plan.site_prefix,
    }
    for trunk in directory.trunks:
        if trunk.site == site.id:
            table[f"trunk:{trunk.id}"] = {
                "kind": trunk.kind,
                "numbers": list(trunk.numbers),
                "caller_id": trunk.presented(),
            }
    for rule in directory.rules:
        if not rule.sites or site.id in rule.sites:
            targets = _targets(rule, site.id, trunks)
            if targets:
                table[f"rule:{rule.id}"] = _rule(rule, targets)
    return table


def _merged(site: Site) -> list[tuple[str, str]]:
    """The site's extensions as ranges, consecutive explicit extensions joined."""
    spans = sorted((len(r.first), int(r.first), int(r.last)) for r in site.all_ranges())
    merged: list[list[int]] = []
    for width, first, last in spans:
        if merged and merged[-1][0] == width and first <= merged[-1][2] + 1:
            merged[-1][2] = max(merged[-1][2], last)
        else:
            merged.append([width, first, last])
    return [(str(f).zfill(w), str(last).zfill(w)) for w, f, last in merged]


def _targets(rule: Rule, site_id: str, trunks: dict[str, Trunk]) -> list[dict[str, Any]]:
    compiled = [_target(t, site_id, trunks) for t in sorted(rule.targets, key=lambda t: t.cost)]
    return [t for t in compiled if t is not None]


def _target(target: Target, site_id: str, trunks: dict[str, Trunk]) -> dict[str, Any] | None:
    if target.site is not None:
        return None if target.site == site_id else {"site": target.site, "cost": target.cost}
    trunk = trunks[target.trunk or ""]
    if trunk.site != site_id:
        return {
            "site": trunk.site,
            "cost": target.cost,
            "via": trunk.id,
            "strip": target.strip,
            "prepend": target.prepend,
            "caller_id": target.caller_id or trunk.presented(),
        }
    return {
        "trunk": trunk.id,
        "cost": target.cost,
        "strip": target.strip,
        "prepend": target.prepend,
        "caller_id": target.caller_id or trunk.presented(),
    }


def _rule(rule: Rule, targets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "prefix": rule.prefix,
        "min_length": rule.min_length,
        "max_length": rule.max_length,
        "priority": rule.priority,
        "windows": [[list(w.days), w.start, w.end] for w in rule.windows],
        "targets": targets,
    }
