"""``tz=site``: each site's queue figures in its own time zone, from the routing directory.

The sites of the directory (``directory_sites.timezone``) are grouped by zone, and a
report runs once per zone over its sites; every site the directory does not name (or
names with UTC) is reported in UTC. Each group reads the period ``from``-``to`` in its
own zone, so "2025-11-24" is each site's own local day.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from aggregator.api.params import zone
from aggregator.store.schema import directory_sites

SITE_ZONE = "site"


@dataclass(frozen=True)
class ZoneGroup:
    """Sites reported in one zone: ``sites`` (None: every site) but not ``not_sites``."""

    tz: ZoneInfo
    sites: frozenset[str] | None
    not_sites: frozenset[str] = frozenset()


def zone_groups(conn: sa.Connection, tz: str, scope: frozenset[str] | None) -> list[ZoneGroup]:
    """The groups a report with ``tz`` runs for, within the sites of ``scope``."""
    if tz != SITE_ZONE:
        return [ZoneGroup(zone(tz), scope)]
    by_zone: dict[str, set[str]] = defaultdict(set)
    d = directory_sites.c
    for site_id, name in conn.execute(sa.select(d.id, d.timezone)):
        if name != "UTC" and (scope is None or site_id in scope):
            by_zone[name].add(site_id)
    placed = frozenset(site for sites in by_zone.values() for site in sites)
    groups = [ZoneGroup(zone(name), frozenset(sites)) for name, sites in sorted(by_zone.items())]
    return [*groups, ZoneGroup(ZoneInfo("UTC"), scope, placed)]
