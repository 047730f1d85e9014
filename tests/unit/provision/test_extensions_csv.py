"""Extensions from CSV: validated row by row, the first bad row named by its line."""

from __future__ import annotations

import pytest

from appliance.provision import ProvisionError
from appliance.provision.extensions import parse_csv


def refused(text: str) -> ProvisionError:
    with pytest.raises(ProvisionError) as caught:
        parse_csv(text, "ext.csv", {})
    return caught.value


def test_rows_become_extensions_with_blank_passwords_generated() -> None:
    found = parse_csv("number,name,password\n1001,Reception,\n1002,Sales,sales-secret\n",
                      "ext.csv", {})  # fmt: skip
    assert [(e.number, e.name) for e in found] == [("1001", "Reception"), ("1002", "Sales")]
    assert len(found[0].password) >= 16
    assert found[1].password == "sales-secret"


def test_a_known_password_is_kept_so_a_rerun_changes_nothing() -> None:
    found = parse_csv("number,name\n1001,Reception\n", "ext.csv", {"1001": "kept-password"})
    assert found[0].password == "kept-password"


def test_a_bad_number_is_reported_with_its_line() -> None:
    error = refused("number,name,password\n1001,Reception,\n10a2,Sales,\n")
    assert error.error_id == "extension-invalid"
    assert error.message == "ext.csv line 3: number: an extension number is 2 to 8 digits"


def test_a_short_password_is_reported_with_its_line() -> None:
    error = refused("number,name,password\n1001,Reception,short\n")
    assert error.message.startswith("ext.csv line 2: password: a password has 8 to 128")


def test_a_duplicate_number_is_refused() -> None:
    error = refused("number,name\n1001,A\n1002,B\n1001,C\n")
    assert (error.error_id, error.message) == (
        "extension-duplicate",
        "ext.csv line 4: extension 1001 twice",
    )


def test_a_wrong_header_or_extra_column_is_refused() -> None:
    assert refused("num,name\n1001,A\n").error_id == "extensions-header"
    assert refused("number,name\n1001,A,pw-long-enough,x\n").message == (
        "ext.csv line 2: more than three columns"
    )
