"""Sites carry an optional region; the console's sites page groups them by it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from aggregator.console import forms
from aggregator.directory.model import Directory, Site
from aggregator.directory.store import DirectoryStore
from aggregator.sites import regions
from aggregator.sites.queries import SiteRow
from aggregator.store.db import create_engine

SITES = forms.DIRECTORY_FORMS["sites"]
BASE = {"id": "berlin", "sip_address": "10.1.0.1"}


def site(region: object) -> Site:
    return Site.model_validate({**BASE, "region": region})


@pytest.mark.parametrize("given", ["eu-central", "Île-de-France", "North West 2", "a" * 64])
def test_a_region_is_short_printable_text(given: str) -> None:
    assert site(given).region == given


@pytest.mark.parametrize("given", [None, ""])
def test_a_site_without_a_region_has_none(given: str | None) -> None:
    assert site(given).region is None
    assert Site.model_validate(BASE).region is None


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("a" * 65, "at most 64 characters"),
        ("eu\ncentral", "printable text"),
        ("eu\x00", "printable text"),
        ("-", "starts with a letter or digit"),
        (" eu", "starts with a letter or digit"),
        ("eu ", "does not end with a space"),
    ],
)
def test_a_bad_region_is_refused_in_words(given: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        site(given)


def test_a_region_that_is_not_text_is_refused() -> None:
    with pytest.raises(ValidationError, match="string"):
        site(42)


def test_the_site_form_edits_the_region_and_shows_its_error_next_to_it() -> None:
    submitted = {**BASE, "timezone": "UTC", "region": "eu-central"}
    made = forms.directory_entry("sites", forms.parse(SITES, submitted))
    assert made.region == "eu-central"
    assert forms.as_text(SITES, made.model_dump(mode="json"))["region"] == "eu-central"
    cleared = forms.directory_entry("sites", forms.parse(SITES, {**submitted, "region": " "}))
    assert cleared.region is None
    with pytest.raises(ValidationError) as caught:
        forms.directory_entry("sites", forms.parse(SITES, {**submitted, "region": "x" * 65}))
    assert forms.field_errors(caught.value, SITES) == {
        "region": ["a region is at most 64 characters"]
    }


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'agg.db'}")
    yield eng
    eng.dispose()


def test_the_directory_store_keeps_a_region_and_the_sites_page_reads_it(
    engine: sa.Engine,
) -> None:
    store = DirectoryStore(lambda: engine)
    entries = [site("eu-central"), Site.model_validate({"id": "hq", "sip_address": "10.0.0.1"})]
    store.change(lambda d: Directory(plan=d.plan, sites=tuple(entries)))
    assert store.read()[0].sites[0].region == "eu-central"
    with engine.connect() as conn:
        assert regions.site_regions(conn) == {"berlin": "eu-central"}


def row(site_id: str, online: bool = True, backlog: int = 0) -> SiteRow:
    return SiteRow(site_id, online, None, "callmesh 0.1.0", backlog, 0, None)


ROWS = [
    row("berlin", backlog=3),
    row("hamburg", online=False),
    row("lyon"),
    row("paris", online=False, backlog=1),
    row("lab"),
    row("old", online=False),
]
REGIONS = {"berlin": "de", "hamburg": "de", "lyon": "fr", "paris": "fr", "gone": "fr"}


def test_sites_are_summarised_per_region_by_name_with_no_region_last() -> None:
    found = regions.summarise(ROWS, REGIONS)
    assert [(r.label, r.sites, r.online, r.offline, r.with_backlog) for r in found] == [
        ("de", 2, 1, 1, 1),
        ("fr", 2, 1, 1, 1),
        ("No region", 2, 1, 1, 0),
    ]
    assert found[-1].key == regions.NO_REGION


def test_only_the_regions_of_the_rows_given_are_shown() -> None:
    scoped = [r for r in ROWS if r.site_id == "lyon"]
    assert [r.key for r in regions.summarise(scoped, REGIONS)] == ["fr"]
    assert regions.summarise([], REGIONS) == []


def test_one_region_lists_its_sites_and_no_region_those_without() -> None:
    assert [r.site_id for r in regions.in_region(ROWS, REGIONS, "fr")] == ["lyon", "paris"]
    no_region = regions.in_region(ROWS, REGIONS, regions.NO_REGION)
    assert [r.site_id for r in no_region] == ["lab", "old"]
    assert regions.in_region(ROWS, REGIONS, "nowhere") == []
