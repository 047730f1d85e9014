"""CSV exports: cells a spreadsheet would run as formulas are written as text (OWASP)."""

from __future__ import annotations

import csv
import io

import pytest

from aggregator.api.csv_export import csv_lines, neutral


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=1+2", "'=1+2"),
        ("+4930123", "'+4930123"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Alice", "Alice"),
        ("", ""),
        ("a=b", "a=b"),
        (-5, -5),
        (1.5, 1.5),
        (None, None),
    ],
)
def test_text_starting_like_a_formula_gets_a_leading_quote(cell: object, written: object) -> None:
    assert neutral(cell) == written


def test_every_cell_and_header_of_an_export_is_neutralised() -> None:
    rows = [
        {"name": '=HYPERLINK("http://x.invalid","click")', "calls": -1, "=key": "@a"},
        {"name": "Bob", "calls": 2, "=key": "b"},
    ]
    parsed = list(csv.reader(io.StringIO("".join(csv_lines(iter(rows))))))
    assert parsed == [
        ["name", "calls", "'=key"],
        ['\'=HYPERLINK("http://x.invalid","click")', "-1", "'@a"],
        ["Bob", "2", "b"],
    ]


def test_a_large_export_comes_in_pieces() -> None:
    rows = ({"n": n, "text": "x" * 100} for n in range(2000))
    pieces = list(csv_lines(rows))
    assert len(pieces) > 2
    assert sum(len(p.splitlines()) for p in pieces) == 2001


def test_no_rows_is_an_empty_export() -> None:
    assert "".join(csv_lines(iter([]))) == ""
