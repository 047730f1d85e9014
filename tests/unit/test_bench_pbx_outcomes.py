"""The PBX benchmark's call outcomes: sipp's log read per call, CDRs held against it."""

from __future__ import annotations

from typing import Any

import pytest

from bench.pbx_outcomes import CdrCheck, UacOutcomes, check_cdrs, parse_uac_log, summary

pytestmark = pytest.mark.unit

ANSWERED = {"sip_code": 200, "reason": "normal-clearing"}
SHED = {"sip_code": 503, "reason": "over-capacity"}


def _cdr(call_id: str, disposition: str, cause: dict[str, Any]) -> dict[str, Any]:
    return {"call_id": call_id, "disposition": disposition, "hangup_cause": cause}


def test_uac_log_lines_become_outcomes_and_other_lines_are_ignored() -> None:
    log = [
        "answered 2-42@127.0.0.1",
        "refused 3-42@127.0.0.1 30",
        "refused 4-42@127.0.0.1",
        "sipp: some warning the scenario did not write",
        "",
    ]
    outcomes = parse_uac_log(log)
    assert outcomes == UacOutcomes(("2-42@127.0.0.1",), ("3-42@127.0.0.1",), ("30",))


def test_every_call_with_its_right_cdr_leaves_no_problem() -> None:
    outcomes = UacOutcomes(("a", "b"), ("c", "d"), ("30", "30"))
    timeout = {"sip_code": 408, "reason": "no-answer"}
    cdrs = [_cdr("a", "answered", ANSWERED), _cdr("b", "answered", ANSWERED),
            _cdr("c", "failed", SHED), _cdr("x", "failed", timeout)]  # fmt: skip
    check = check_cdrs(outcomes, cdrs)
    assert check == CdrCheck(
        answered_ok=2, refused_without_cdr=1, refused_with_shed_cdr=1, other_cdrs=1
    )


def test_missing_duplicate_and_wrong_cdrs_are_each_a_problem() -> None:
    outcomes = UacOutcomes(("a", "b", "c", "e"), ("d", "f"), ("30", "30"))
    cdrs = [_cdr("b", "answered", ANSWERED), _cdr("b", "answered", ANSWERED),
            _cdr("c", "failed", SHED), _cdr("e", "failed", SHED),
            _cdr("d", "answered", ANSWERED),
            _cdr("f", "failed", SHED), _cdr("f", "answered", ANSWERED)]  # fmt: skip
    check = check_cdrs(outcomes, cdrs)
    assert check.answered_ok == 0
    assert set(check.problems) == {
        "answered call with 0 CDRs",
        "answered call with 2 CDRs (answered, answered)",
        f"answered call with CDR failed {SHED} (2 calls)",
        f"refused call with CDR answered {ANSWERED}",
        "refused call with 2 CDRs (answered, failed)",
    }


def test_summary_names_the_outcomes_and_the_problems() -> None:
    outcomes = UacOutcomes(("a",), ("b",), ("7",))
    problems = ("answered call with 0 CDRs",)
    check = CdrCheck(answered_ok=1, refused_with_shed_cdr=1, problems=problems)
    line = summary(outcomes, 3, check)
    assert line.startswith("answered 1, refused 503 with Retry-After 1 (Retry-After 7), other")
    assert "other failures 3" in line
    assert line.endswith("; answered call with 0 CDRs")
