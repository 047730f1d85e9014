"""Directory validation: each bad directory is refused naming the entries at fault."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from aggregator.directory.model import Directory
from aggregator.directory.validate import DirectoryError, validate
from tests.unit.routing.samples import company, directory


def refused(doc: dict[str, Any]) -> DirectoryError:
    with pytest.raises(DirectoryError) as caught:
        validate(Directory.model_validate(doc))
    return caught.value


def with_site(doc: dict[str, Any], index: int, **fields: Any) -> dict[str, Any]:
    doc["sites"][index] = {**doc["sites"][index], **fields}
    return doc


def test_sample_directory_is_valid() -> None:
    validate(directory())


def test_overlapping_ranges_across_sites_name_both_entries() -> None:
    doc = with_site(company(), 1, ranges=[{"first": "1050", "last": "1150"}])
    err = refused(doc)
    assert err.error_id == "overlapping-extensions"
    assert err.entries == ("site berlin 1000-1099", "site paris 1050-1150")


def test_explicit_extension_inside_a_range_of_the_same_site_is_an_overlap() -> None:
    err = refused(with_site(company(), 0, extensions=["1042"]))
    assert err.error_id == "overlapping-extensions"
    assert err.entries == ("site berlin 1000-1099", "site berlin 1042")


def test_overlap_across_sites_is_allowed_without_a_flat_plan() -> None:
    doc = with_site(
        company(plan={"flat": False, "site_prefix": "8"}),
        1,
        ranges=[{"first": "1000", "last": "1010"}],
    )
    validate(Directory.model_validate(doc))


def test_rule_naming_an_unknown_trunk_is_refused() -> None:
    doc = company()
    doc["rules"][0]["targets"] = [{"trunk": "madrid-sip"}]
    err = refused(doc)
    assert err.error_id == "unknown-trunk"
    assert err.entries == ("rule germany", "trunk madrid-sip")


def test_rule_naming_an_unknown_site_is_refused() -> None:
    doc = company()
    doc["rules"][2]["targets"][1] = {"site": "rome"}
    err = refused(doc)
    assert err.error_id == "unknown-site"
    assert err.entries == ("rule international", "site rome")


def test_trunk_at_an_unknown_site_is_refused() -> None:
    doc = company()
    doc["trunks"][1]["site"] = "madrid"
    err = refused(doc)
    assert (err.error_id, err.entries) == ("unknown-site", ("trunk lyon-gsm", "site madrid"))


def test_caller_id_the_trunk_does_not_own_is_refused() -> None:
    doc = company()
    doc["rules"][0]["targets"][0]["caller_id"] = "+33612345678"
    err = refused(doc)
    assert err.error_id == "caller-id-not-owned"
    assert err.entries == ("rule germany", "trunk berlin-sip", "+33612345678")


def test_default_caller_id_must_be_owned_by_its_trunk() -> None:
    doc = company()
    doc["trunks"][0]["caller_id"] = "+4930999"
    err = refused(doc)
    assert (err.error_id, err.entries) == (
        "caller-id-not-owned",
        ("trunk berlin-sip", "trunk berlin-sip", "+4930999"),
    )


def test_two_sites_handing_calls_to_each_other_is_a_loop() -> None:
    doc = company()
    doc["rules"][2]["sites"] = ["berlin"]
    doc["rules"] += [
        {"id": "paris-out", "prefix": "0044", "sites": ["paris"], "targets": [{"site": "lyon"}]},
        {"id": "lyon-out", "prefix": "00", "sites": ["lyon"], "targets": [{"site": "paris"}]},
    ]
    err = refused(doc)
    assert err.error_id == "routing-loop"
    assert set(err.entries) == {"rule paris-out", "rule lyon-out"}
    assert "paris -> lyon -> paris" in err.message


def test_a_loop_through_a_company_wide_rule_names_that_rule() -> None:
    doc = company()
    doc["rules"][2]["sites"] = []
    doc["rules"].append(
        {"id": "uk", "prefix": "0044", "sites": ["paris"], "targets": [{"site": "lyon"}]}
    )
    err = refused(doc)
    assert err.error_id == "routing-loop"
    assert set(err.entries) == {"rule international", "rule uk"}


def test_handing_to_a_site_that_breaks_out_is_not_a_loop() -> None:
    doc = company()
    doc["rules"].append(
        {"id": "mobile", "prefix": "01", "sites": ["paris"], "targets": [{"site": "lyon"}]}
    )
    validate(Directory.model_validate(doc))


def test_rules_with_disjoint_prefixes_do_not_make_a_loop() -> None:
    doc = company()
    doc["rules"] += [
        {"id": "a", "prefix": "0144", "sites": ["paris"], "targets": [{"site": "lyon"}]},
        {"id": "b", "prefix": "0134", "sites": ["lyon"], "targets": [{"site": "paris"}]},
    ]
    validate(Directory.model_validate(doc))


def test_site_code_that_prefixes_another_is_ambiguous() -> None:
    err = refused(with_site(company(), 2, code="1"))
    assert err.error_id == "ambiguous-site-code"
    assert err.entries == ("site lyon", "site berlin")


def test_extensions_starting_with_the_site_prefix_collide() -> None:
    err = refused(with_site(company(), 2, extensions=["8123"]))
    assert (err.error_id, err.entries) == ("prefix-collision", ("site lyon 8123",))


def test_duplicate_ids_are_refused() -> None:
    doc = company()
    doc["trunks"].append(dict(doc["trunks"][0]))
    err = refused(doc)
    assert (err.error_id, err.entries) == ("duplicate-id", ("berlin-sip",))


def test_every_problem_is_listed_not_only_the_first() -> None:
    doc = with_site(company(), 1, ranges=[{"first": "1050", "last": "1050"}])
    doc["rules"][0]["targets"] = [{"trunk": "nowhere"}]
    err = refused(doc)
    assert [p.error_id for p in err.problems] == ["unknown-trunk", "overlapping-extensions"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"ranges": [{"first": "1099", "last": "1000"}]}, "ranges"),
        ({"ranges": [{"first": "100", "last": "1000"}]}, "ranges"),
        ({"extensions": ["12a"]}, "extensions"),
    ],
)
def test_malformed_site_fields_fail_model_validation(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Directory.model_validate(with_site(company(), 0, **change))
    assert field in str(caught.value)


def test_target_with_both_site_and_trunk_is_malformed() -> None:
    doc = company()
    doc["rules"][0]["targets"] = [{"site": "paris", "trunk": "berlin-sip"}]
    with pytest.raises(ValidationError, match="exactly one of site or trunk"):
        Directory.model_validate(doc)
