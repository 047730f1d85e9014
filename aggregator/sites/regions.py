"""Sites grouped by the region the directory gives them (``directory_sites.region``).

The console's sites page shows one summary per region and lists the sites of one region;
a site the directory gives no region, or that is not in the directory, is under
``NO_REGION``. The groups come from the rows given, so a site-scoped viewer sees only the
regions of its own sites.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from aggregator.sites.queries import SiteRow
from aggregator.store.schema import directory_sites

NO_REGION = "-"  # a region starts with a letter or digit (Site.region), so this is never one
NO_REGION_LABEL = "No region"


@dataclass(frozen=True)
class RegionSummary:
    """One region's sites at a glance."""

    key: str  # the region, or NO_REGION
    sites: int
    online: int
    with_backlog: int

    @property
    def offline(self) -> int:
        return self.sites - self.online

    @property
    def label(self) -> str:
        return label(self.key)


def label(key: str) -> str:
    """How a region key is shown."""
    return NO_REGION_LABEL if key == NO_REGION else key


def site_regions(conn: sa.Connection) -> dict[str, str]:
    """Region by site id, for the directory's sites that have one."""
    d = directory_sites.c
    query = sa.select(d.id, d.region).where(d.region.is_not(None))
    return {row.id: row.region for row in conn.execute(query)}


def region_of(row: SiteRow, regions: Mapping[str, str]) -> str:
    """The site's region key."""
    return regions.get(row.site_id) or NO_REGION


def summarise(rows: Sequence[SiteRow], regions: Mapping[str, str]) -> list[RegionSummary]:
    """One summary per region the rows cover, by name, ``NO_REGION`` last."""
    grouped: dict[str, list[SiteRow]] = {}
    for row in rows:
        grouped.setdefault(region_of(row, regions), []).append(row)
    return [
        RegionSummary(
            key=key,
            sites=len(members),
            online=sum(r.online for r in members),
            with_backlog=sum(r.backlog_cdr > 0 for r in members),
        )
        for key, members in sorted(grouped.items(), key=lambda kv: (kv[0] == NO_REGION, kv[0]))
    ]


def in_region(rows: Sequence[SiteRow], regions: Mapping[str, str], key: str) -> list[SiteRow]:
    """The rows of one region key (``NO_REGION``: those without one)."""
    return [r for r in rows if region_of(r, regions) == key]
