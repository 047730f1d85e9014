"""Compliance in the call path: API originations and break-outs of bound extensions.

Theory of operation: an API origination (click-to-dial, conference, three-way) is
checked before any worker is asked to dial, whoever asks. A break-out (a decision that
leaves the company: trunk, GSM trunk group, a routed trunk) is checked when the caller
is an extension bound in ``compliance.extensions``, with its campaign's rules (else the
site's). Each check counts one attempt, so the SIP leg that carries out an origination
already checked (the phone dialling after a click-to-dial, a worker dialling a
participant) passes on that origination's clearance instead of counting again, and a
call Kamailio asks about again (the next GSM channel after a failure) gets its first
verdict. Clearances and verdicts are kept ``KEEP_S`` seconds in memory: after a
restart a leg in flight is checked once more, which can only refuse, never let through.

``ComplianceDecider`` is the routing chain's ``POLICY`` link: a refused break-out is a
403 whose reason phrase is the rule (``dnc-site``, ``dnc-company``,
``outside-calling-hours``, ``attempt-limit``) and whose ``Reason`` header carries the
sentence for the phone's display; the CDR's disposition is ``refused``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from appliance.compliance.service import Attempt, ComplianceService
from appliance.compliance.service import Decision as Verdict
from appliance.pbx.deciders import RouteQuery, outside_number
from appliance.pbx.dialplan import Decision
from appliance.settings import ExtensionBinding

KEEP_S = 120.0


class CallCompliance:
    """Checks calls once each: API originations always, break-outs of bound extensions."""

    def __init__(
        self,
        service: ComplianceService,
        bound: Mapping[str, ExtensionBinding],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._bound = dict(bound)
        self._clock = clock
        self._cleared: dict[tuple[str, str], float] = {}
        self._verdicts: dict[str, tuple[float, Verdict]] = {}

    @property
    def bound(self) -> frozenset[str]:
        """The extensions whose break-outs are checked."""
        return frozenset(self._bound)

    def originate(self, extension: str, number: str, source: str) -> tuple[str, str] | None:
        """``(rule, message)`` when an API origination may not dial ``number`` now."""
        verdict = self._check(extension, number, Attempt(source, extension))
        if not verdict.allowed:
            return verdict.error_id, verdict.message
        self._cleared[(extension, number)] = self._clock() + KEEP_S
        return None

    def break_out(self, call_id: str, caller: str, number: str) -> Verdict | None:
        """The verdict on a break-out of a bound extension; None when it is not checked."""
        self._forget_old()
        if caller not in self._bound:
            return None
        known = self._verdicts.get(call_id) if call_id else None
        if known is not None:
            return known[1]
        if self._cleared.pop((caller, number), None) is not None:
            verdict = Verdict(True, number)
        else:
            verdict = self._check(caller, number, Attempt("break-out", caller, call_id))
        if call_id:
            self._verdicts[call_id] = (self._clock() + KEEP_S, verdict)
        return verdict

    def _check(self, extension: str, number: str, attempt: Attempt) -> Verdict:
        binding = self._bound.get(extension)
        campaign = binding.campaign if binding is not None else None
        return self._service.check(number, campaign, attempt=attempt)

    def _forget_old(self) -> None:
        now = self._clock()
        self._cleared = {k: t for k, t in self._cleared.items() if t > now}
        self._verdicts = {k: v for k, v in self._verdicts.items() if v[0] > now}


class ComplianceDecider:
    """The routing chain's compliance link: refuses a break-out the rules forbid."""

    name = "compliance"
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(self, calls: CallCompliance) -> None:
        self._calls = calls
        # Break-outs of bound extensions are checked here, every one: Kamailio asks.
        self.asked_callers = calls.bound

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """403 with the rule for a refused break-out; anything else passes unchanged."""
        if decision is None or query.from_trunk or query.from_peer:
            return decision
        number = outside_number(decision, query.dialled)
        if number is None:
            return decision
        verdict = self._calls.break_out(query.call_id, query.caller, number)
        if verdict is None or verdict.allowed:
            return decision
        return Decision("reject", code=403, reason=verdict.error_id, route=decision.route,
                        refusal=verdict.message)  # fmt: skip
