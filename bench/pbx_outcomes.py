"""What became of each call a PBX benchmark placed, and whether the edge left anything half set up.

The benchmark's sipp UAC logs one line per call it completed: ``answered <call-id>`` for a
call that was answered, held and hung up, ``refused <call-id> <seconds>`` for one the edge
refused with 503 carrying a Retry-After (a 503 without it fails the call in sipp). Calls
sipp counts as failed are the third outcome. :func:`parse_uac_log` reads that log,
:func:`check_cdrs` holds the appliance's CDRs against it: an answered call has exactly one
CDR, ``answered`` with a normal clearing; a refused call has none or the one the edge writes
for a call it shed (``failed``, hangup cause 503 ``over-capacity``, docs/pbx.md). sipp names
no call it failed, so their CDRs are only counted.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SHED_CAUSE = {"sip_code": 503, "reason": "over-capacity"}
ANSWERED_CAUSE = {"sip_code": 200, "reason": "normal-clearing"}


@dataclass(frozen=True)
class UacOutcomes:
    """The call ids sipp logged per outcome, and the Retry-After values of the refusals."""

    answered: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    retry_after: tuple[str, ...] = ()


@dataclass(frozen=True)
class CdrCheck:
    """How the CDRs match the outcomes; ``problems`` is empty when nothing is half set up."""

    answered_ok: int = 0
    refused_without_cdr: int = 0
    refused_with_shed_cdr: int = 0
    other_cdrs: int = 0
    problems: tuple[str, ...] = field(default_factory=tuple)


def parse_uac_log(lines: Iterable[str]) -> UacOutcomes:
    """The outcomes in a sipp ``-trace_logs`` file written by the benchmark's UAC."""
    answered: list[str] = []
    refused: list[str] = []
    retry_after: list[str] = []
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "answered":
            answered.append(words[1])
        elif len(words) >= 3 and words[0] == "refused":
            refused.append(words[1])
            retry_after.append(words[2])
    return UacOutcomes(tuple(answered), tuple(refused), tuple(retry_after))


def check_cdrs(outcomes: UacOutcomes, cdrs: Iterable[Mapping[str, Any]]) -> CdrCheck:
    """Hold every CDR against the call's outcome; one problem line per kind of mismatch."""
    by_call: dict[str, list[Mapping[str, Any]]] = collections.defaultdict(list)
    for cdr in cdrs:
        by_call[str(cdr.get("call_id"))].append(cdr)
    problems: collections.Counter[str] = collections.Counter()
    answered_ok = sum(_answered_ok(by_call.get(cid, []), problems) for cid in outcomes.answered)
    shed = sum(_refused_has_cdr(by_call.get(cid, []), problems) for cid in outcomes.refused)
    known = set(outcomes.answered) | set(outcomes.refused)
    return CdrCheck(
        answered_ok=answered_ok,
        refused_without_cdr=len(outcomes.refused) - shed,
        refused_with_shed_cdr=shed,
        other_cdrs=sum(len(found) for cid, found in by_call.items() if cid not in known),
        problems=tuple(f"{what} ({n} calls)" if n > 1 else what for what, n in problems.items()),
    )


def _answered_ok(found: list[Mapping[str, Any]], problems: collections.Counter[str]) -> bool:
    if len(found) != 1:
        problems[f"answered call with {len(found)} CDRs{_kinds(found)}"] += 1
        return False
    cdr = found[0]
    if cdr.get("disposition") != "answered" or cdr.get("hangup_cause") != ANSWERED_CAUSE:
        problems[f"answered call with CDR {cdr.get('disposition')} {cdr.get('hangup_cause')}"] += 1
        return False
    return True


def _refused_has_cdr(found: list[Mapping[str, Any]], problems: collections.Counter[str]) -> bool:
    if not found:
        return False
    if len(found) > 1:
        problems[f"refused call with {len(found)} CDRs{_kinds(found)}"] += 1
    cdr = found[0]
    if cdr.get("disposition") != "failed" or cdr.get("hangup_cause") != SHED_CAUSE:
        problems[f"refused call with CDR {cdr.get('disposition')} {cdr.get('hangup_cause')}"] += 1
    return True


def _kinds(found: list[Mapping[str, Any]]) -> str:
    kinds = sorted(str(cdr.get("disposition")) for cdr in found)
    return f" ({', '.join(kinds)})" if kinds else ""


def counts(outcomes: UacOutcomes, failed: int) -> str:
    """The calls per outcome, with the Retry-After values the refusals carried."""
    retry = sorted(set(outcomes.retry_after))
    return (
        f"answered {len(outcomes.answered)}, refused 503 with Retry-After {len(outcomes.refused)}"
        f" (Retry-After {', '.join(retry) or '-'}), other failures {failed}"
    )


def summary(outcomes: UacOutcomes, failed: int, check: CdrCheck) -> str:
    """One line: the outcomes, the CDR check and what was half set up, if anything."""
    text = (
        f"{counts(outcomes, failed)}; CDRs: answered with exactly one right CDR"
        f" {check.answered_ok}, refused with the shed CDR {check.refused_with_shed_cdr},"
        f" refused without CDR {check.refused_without_cdr},"
        f" CDRs of the other calls {check.other_cdrs}"
    )
    return text + ("; " + "; ".join(check.problems) if check.problems else "")
