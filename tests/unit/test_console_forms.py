"""Console forms: text to directory entries and limits, and each error next to its field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aggregator.console import forms
from aggregator.fleet.schemas import Limits

SITES = forms.DIRECTORY_FORMS["sites"]
RULES = forms.DIRECTORY_FORMS["rules"]


def errors_of(kind: str, submitted: dict[str, str]) -> dict[str, list[str]]:
    fields = forms.DIRECTORY_FORMS[kind]
    with pytest.raises(ValidationError) as caught:
        forms.directory_entry(kind, forms.parse(fields, submitted))
    return forms.field_errors(caught.value, fields)


def test_a_site_form_becomes_a_site_with_extensions_and_ranges() -> None:
    submitted = {
        "id": "berlin",
        "sip_address": "10.1.0.1",
        "timezone": "Europe/Berlin",
        "code": "",
        "extensions": "100, 101 102",
        "ranges": "200-299, 300",
    }
    site = forms.directory_entry("sites", forms.parse(SITES, submitted))
    assert site.extensions == ("100", "101", "102")
    assert [r.label() for r in site.ranges] == ["200-299", "300"]
    assert site.code is None
    shown = forms.as_text(SITES, site.model_dump(mode="json"))
    assert shown["ranges"] == "200-299, 300"
    assert forms.directory_entry("sites", forms.parse(SITES, shown)) == site


def test_a_rule_form_reads_one_target_per_line() -> None:
    submitted = {
        "id": "mobile",
        "prefix": "0049",
        "priority": "10",
        "targets": "trunk gsm-1 cost=1 strip=4 prepend=+49\nsite hq",
    }
    rule = forms.directory_entry("rules", forms.parse(RULES, submitted))
    assert rule.priority == 10
    assert [t.label() for t in rule.targets] == ["trunk gsm-1", "site hq"]
    assert (rule.targets[0].strip, rule.targets[0].prepend) == (4, "+49")
    shown = forms.as_text(RULES, rule.model_dump(mode="json"))
    assert forms.directory_entry("rules", forms.parse(RULES, shown)) == rule


def test_each_invalid_field_gets_its_own_message_in_words() -> None:
    found = errors_of("sites", {"id": "Bad Id", "sip_address": "no spaces!", "timezone": "Mars"})
    assert set(found) == {"id", "sip_address", "timezone"}
    assert found["sip_address"] == ["not valid here: host or IP on the company network"]
    assert found["timezone"] == ["unknown time zone 'Mars' (use an IANA name)"]


def test_a_problem_inside_one_target_is_shown_next_to_the_targets() -> None:
    found = errors_of("rules", {"id": "r", "prefix": "0", "targets": "site hq strip=1"})
    assert list(found) == ["targets"]
    assert "trunk targets only" in found["targets"][0]


def test_limits_left_empty_are_not_set() -> None:
    parsed = forms.parse(forms.LIMITS_FORM, {"calls_per_day": "5", "minutes_per_day": ""})
    limits = Limits.model_validate(parsed)
    assert limits.model_dump(exclude_none=True) == {"calls_per_day": 5}
