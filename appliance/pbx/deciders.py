"""The routing decision as a chain of small deciders; Kamailio asks, the chain answers.

Theory of operation: every ``GET /route`` becomes a ``RouteQuery``. The chain hands it
to its deciders in stage order (ties in the order they were added), each with the
decision so far: an ``OWN_NUMBERS`` decider answers numbers a feature owns and no dial
plan knows (contact-centre queues, a hotel room's service codes) before the dial plan would
refuse them, a ``ROUTE`` decider proposes one (dial plan, inter-site admission), a
``POLICY`` decider may refuse it (compliance, a hotel room's class of service), a
``TRUNK`` decider turns a trunk group into one channel (GSM), a ``MEDIA`` decider
completes it (recording policy). A decider answers the decision unchanged when the call
is none of its business. A refusal ends the chain at once, so nothing after it (a GSM
channel, a recording) is seized for a refused call.

The PBX adds its own deciders; a feature joins by ``chain.add(decider, stage)`` at
the composition root (``appliance/service.py``), without touching the others.

Calls between local phones are decided in Kamailio from a table the PBX renders
(``appliance/pbx/local_routes.py``), without asking the chain, but only while every
decider in the chain declares ``keeps_local_calls = True``: that it answers an
``extension`` or ``group`` decision for a call that is not from a trunk or another
site unchanged. A decider without the declaration (a contact-centre queue taking
over an agent's extension, say) turns the table off, so every call asks the chain.

Break-outs of phones through a SIP trunk and calls from a trunk to a DID are decided
in Kamailio the same way, while every decider declares ``keeps_trunk_calls = True``:
that it answers the dial plan's ``trunk`` decision for a call from a phone, and its
inbound decision for a call from a trunk, unchanged, whoever calls and whenever,
except for the callers it lists in ``asked_callers`` (compliance-bound extensions) and
the dialled numbers it lists in ``asked_numbers`` (a queue's number), which Kamailio
keeps asking about.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from appliance.pbx.dialplan import Decision, DialPlan

OWN_NUMBERS = 50
ROUTE = 100
POLICY = 200
TRUNK = 300
UNSERVED = 390
MEDIA = 400

NO_ROUTE = Decision("reject", code=404, reason="no-route")


@dataclass(frozen=True)
class RouteQuery:
    """What Kamailio asks about one INVITE (``raw`` keeps every query field)."""

    caller: str
    dialled: str
    call_id: str = ""
    to: str = ""
    from_trunk: bool = False
    from_peer: bool = False
    raw: Mapping[str, str] | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> RouteQuery:
        """The typed query from the route server's query string."""
        return cls(
            caller=query.get("caller", ""),
            dialled=query.get("dialled", ""),
            call_id=query.get("call_id", ""),
            to=query.get("to", ""),
            from_trunk=query.get("trunk") == "1",
            from_peer=query.get("peer") == "1",
            raw=dict(query),
        )


class Decider(Protocol):
    """One link of the chain: the decision so far in, the decision out."""

    name: str

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """The decision after this decider (``decision`` unchanged when not concerned)."""


class DecisionChain:
    """Deciders in stage order; ``decide`` runs them and stops at the first refusal."""

    def __init__(self) -> None:
        self._links: list[tuple[int, int, Decider]] = []

    def add(self, decider: Decider, stage: int) -> None:
        """Join the chain at ``stage`` (after every decider already at that stage)."""
        bisect.insort(self._links, (stage, len(self._links), decider), key=lambda x: x[:2])

    @property
    def keeps_local_calls(self) -> bool:
        """Whether every decider declared it leaves calls between local phones alone."""
        return all(getattr(d, "keeps_local_calls", False) is True for _, _, d in self._links)

    @property
    def keeps_trunk_calls(self) -> bool:
        """Whether every decider declared it leaves break-outs and DID calls alone."""
        return all(getattr(d, "keeps_trunk_calls", False) is True for _, _, d in self._links)

    @property
    def asked_callers(self) -> frozenset[str]:
        """Callers whose break-outs some decider must see every time."""
        return frozenset().union(*(getattr(d, "asked_callers", ()) for _, _, d in self._links))

    @property
    def asked_numbers(self) -> frozenset[str]:
        """Dialled numbers some decider answers before the dial plan."""
        return frozenset().union(*(getattr(d, "asked_numbers", ()) for _, _, d in self._links))

    @property
    def names(self) -> list[str]:
        """The deciders' names in the order they run."""
        return [decider.name for _, _, decider in self._links]

    def decide(self, query: RouteQuery) -> Decision:
        """The chain's answer for ``query``; no decider answering means 404 ``no-route``."""
        decision: Decision | None = None
        for _, _, decider in self._links:
            decision = decider.decide(query, decision)
            if decision is not None and decision.action == "reject":
                return decision
        return decision or NO_ROUTE


class DialPlanDecider:
    """The site's dial plan proposes the route of a call that is not from another site."""

    name = "dialplan"
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(self, dialplan: Callable[[], DialPlan]) -> None:
        self._dialplan = dialplan

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """The dial plan's decision, unless another decider already proposed one."""
        if decision is not None or query.from_peer:
            return decision
        plan = self._dialplan()
        return plan.decide(query.caller, query.dialled, query.from_trunk, query.to, query.call_id)


class UnservedGsm:
    """A ``gsm`` decision no GSM decider took: this PBX has no GSM trunk.

    The dial plan's ``gsm`` decision names the number to dial; a GSM decider that served
    it names a worker's SIP URI instead.
    """

    name = "unserved-gsm"
    keeps_local_calls = True
    keeps_trunk_calls = True

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """503 ``no-gsm-trunk`` for a GSM route left unserved."""
        if decision is not None and decision.action == "gsm" and "@" not in decision.uri:
            return Decision("reject", code=503, reason="no-gsm-trunk")
        return decision


class RecordingPolicy:
    """Completes a decision with the recording policy; ``enabled`` off records nothing."""

    name = "recording"
    keeps_local_calls = True
    keeps_trunk_calls = True

    def __init__(self, dialplan: Callable[[], DialPlan], enabled: bool) -> None:
        self._dialplan = dialplan
        self._enabled = enabled

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        """The dial plan's policy for a decision that has none; ``never`` when disabled."""
        if decision is None:
            return None
        if not self._enabled:
            return replace(decision, recording="never")
        if decision.recording is None:
            policy = self._dialplan().recording(query.caller, query.dialled)
            return replace(decision, recording=policy)
        return decision


def outside_number(decision: Decision, dialled: str) -> str | None:
    """The number a decision dials outside the company (trunk, GSM, routed trunk), else None.

    A routed trunk (``route`` naming a trunk, here or at another site) dials its first
    hop's number: the company's rule has applied its strip and prepend to it.
    """
    if decision.action == "gsm":
        return decision.uri
    if decision.action == "trunk":
        return _user(decision.uri)
    if decision.action == "route" and decision.trunk:
        return _user(decision.hops[0].uri) if decision.hops else dialled
    return None


def _user(uri: str) -> str:
    return uri.removeprefix("sip:").partition("@")[0]
