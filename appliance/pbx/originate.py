"""Calls the appliance places through a media worker: click-to-dial and conferences.

Click-to-dial: a worker rings the extension (From ``click-to-dial``, display "Dialling
<number>"); once it answers, the worker REFERs it to the number and leaves. The phone
then dials the number itself, authenticated as the extension, so its class of service
and its route's caller ID (a number the site owns) apply as to any call it makes. Both
legs carry the same conversation id (header ``X-Callmesh-Conversation``, copied from
the Refer-To URI into the phone's INVITE).

Conference: a worker dials every participant into one room of its conference bridge,
presenting ``on_behalf_of`` (whose class of service applies to outside numbers).
Three-way: the worker takes over both ends of a call between two extensions with
INVITEs carrying Replaces (RFC 3891) and dials the third party into the same room.

Each operation has an id and a state the API reports: ``dialling``, ``ringing``,
``connected`` (click-to-dial: the REFER was accepted), ``active`` (conference: at
least one leg answered), ``ended`` or ``failed`` with a reason.

Refusals raise ``CallControlError`` (appliance.pbx.errors) before anything is dialled.
Every number that leaves the company (its dial-plan decision is a trunk, GSM or routed
trunk) first passes the checks joined with ``add_check`` (compliance, at the
composition root); a refusal is ``compliance-refused`` (403, ``details.rule``), written
as a CDR with disposition ``refused``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from appliance.pbx.calls import CallService
from appliance.pbx.deciders import outside_number
from appliance.pbx.dialplan import DialPlan
from appliance.pbx.errors import CallControlError
from appliance.pbx.media import MediaPool, MediaPoolFullError, MediaWorker
from drivers.media.protocol import Conference, Hangup, LegEvent, Originate, TransferEvent
from drivers.sip.events import Rejected

log = logging.getLogger(__name__)

CONVERSATION_HEADER = "X-Callmesh-Conversation"
KEEP_S = 3600.0
MAX_PARTICIPANTS = 4


class OriginationCheck(Protocol):
    """A check before dialling ``number`` outside for ``extension``: ``(rule, message)`` refuses."""

    def __call__(self, extension: str, number: str, source: str) -> tuple[str, str] | None: ...


@dataclass
class Operation:
    """One click-to-dial or conference and what its legs did."""

    id: str
    kind: str
    conversation_id: str
    worker: str
    parties: list[str]
    state: str = "dialling"
    reason: str | None = None
    created: float = field(default_factory=time.time)
    legs: dict[str, str] = field(default_factory=dict)

    def doc(self) -> dict[str, Any]:
        """The API's view."""
        return {
            "id": self.id,
            "kind": self.kind,
            "conversation_id": self.conversation_id,
            "state": self.state,
            "reason": self.reason,
            "parties": self.parties,
            "legs": dict(self.legs),
            "worker": self.worker,
        }


class OriginationService:
    """Places calls through the media pool and follows them to their end."""

    def __init__(
        self,
        pool: MediaPool,
        calls: Callable[[], CallService],
        dialplan: Callable[[], DialPlan],
        domain: str,
    ) -> None:
        self._pool = pool
        self._calls = calls
        self._dialplan = dialplan
        self._domain = domain
        self._ops: dict[str, Operation] = {}
        self._checks: list[OriginationCheck] = []

    def add_check(self, check: OriginationCheck) -> None:
        """Run ``check`` on every outside number before an operation dials anything."""
        self._checks.append(check)

    def get(self, op_id: str) -> dict[str, Any] | None:
        """An operation's state, or None."""
        op = self._ops.get(op_id)
        return op.doc() if op else None

    def click_to_dial(self, extension: str, number: str) -> dict[str, Any]:
        """Ring ``extension``; when it answers, connect it to ``number``."""
        plan = self._dialplan()
        if extension not in plan.extensions:
            raise CallControlError(404, "unknown-extension", f"{extension} is not an extension")
        self._check_route(plan, extension, number, "click-to-dial")
        worker = self._worker(1)
        op = self._new("click-to-dial", worker, [extension, number])
        refer_to = (
            f"<sip:{number}@{self._domain}?{CONVERSATION_HEADER}={quote(op.conversation_id)}>"
        )
        worker.send(Originate(
            id=op.id, to=extension, from_user="click-to-dial", display=f"Dialling {number}",
            refer_to=refer_to, headers={CONVERSATION_HEADER: op.conversation_id},
        ))  # fmt: skip
        return op.doc()

    def conference(self, participants: list[str], on_behalf_of: str) -> dict[str, Any]:
        """Dial every participant into one conference room."""
        plan = self._dialplan()
        if on_behalf_of not in plan.extensions:
            raise CallControlError(404, "unknown-extension", f"{on_behalf_of} is not an extension")
        self._check_parties(participants)
        for number in participants:
            self._check_route(plan, on_behalf_of, number, "conference")
        worker = self._worker(len(participants))
        op = self._new("conference", worker, list(participants))
        for number in participants:
            self._dial_into(worker, op, number, on_behalf_of)
        return op.doc()

    def vet_three_way(self, call_id: str, number: str) -> dict[str, Any]:
        """The call ``three_way`` may take over to add ``number``; CallControlError if not."""
        call = self._calls().get(call_id)
        if call is None:
            raise CallControlError(404, "call-not-found", f"no call {call_id} in progress")
        caller, callee = call["caller"], call["callee"]
        if call.get("answer") is None or not call.get("to_tag"):
            raise CallControlError(409, "call-not-answered", "the call is not answered yet")
        if not (caller.get("extension") and callee.get("extension")):
            raise CallControlError(
                409, "not-between-extensions", "three-way needs a call between two extensions"
            )
        self._check_route(self._dialplan(), caller["extension"], number, "three-way")
        return call

    def three_way(self, call: dict[str, Any], number: str) -> dict[str, Any]:
        """Move a vetted call between two extensions into a room and dial ``number`` into it."""
        call_id, caller, callee = call["call_id"], call["caller"], call["callee"]
        worker = self._worker(3)
        op = self._new("three-way", worker, [caller["number"], callee["number"], number],
                       call["conversation_id"])  # fmt: skip
        from_tag, to_tag = call["caller_tag"], call["to_tag"]
        # Replaces names the dialog as its recipient sees it: to-tag is the recipient's own.
        self._dial_into(worker, op, caller["number"], caller["number"],
                        f"{call_id};to-tag={from_tag};from-tag={to_tag}")  # fmt: skip
        self._dial_into(worker, op, callee["number"], caller["number"],
                        f"{call_id};to-tag={to_tag};from-tag={from_tag}")  # fmt: skip
        self._dial_into(worker, op, number, caller["number"])
        return op.doc()

    def hangup(self, op_id: str) -> dict[str, Any] | None:
        """End every leg of an operation; None when the id is unknown."""
        op = self._ops.get(op_id)
        if op is None:
            return None
        worker = self._pool.by_address(op.worker)
        if worker is not None:
            worker.send(Hangup(op.id))
        return op.doc()

    def on_event(self, worker: MediaWorker, event: LegEvent | TransferEvent) -> None:
        """Apply a worker's ``leg``/``transfer`` event to its operation."""
        op = self._ops.get(event.id.split("/")[0])
        if op is None:
            return
        leg = event.id.partition("/")[2] or op.parties[0]
        if isinstance(event, LegEvent):
            op.legs[leg] = event.state
            if event.state == "ended" and not event.answered:
                op.legs[leg] = "failed"
                op.reason = op.reason or f"{leg}: {event.code} {event.reason}"
        elif event.final:
            ok = 200 <= event.code < 300
            op.state = "connected" if ok else "failed"
            op.reason = None if ok else f"transfer refused: {event.code}"
        self._summarise(op)

    def worker_lost(self, worker: MediaWorker) -> None:
        """A worker died: its operations end."""
        for op in self._ops.values():
            if op.worker == worker.address and op.state not in ("ended", "failed", "connected"):
                op.state, op.reason = "failed", "media-worker-restart"

    def _summarise(self, op: Operation) -> None:
        states = list(op.legs.values())
        if op.kind == "click-to-dial":
            if op.state in ("connected", "failed"):
                return
            if "failed" in states:
                op.state = "failed"
            elif "answered" in states:
                op.state = "transferring"
            elif "ringing" in states:
                op.state = "ringing"
            return
        if len(states) == len(op.parties) and all(s in ("ended", "failed") for s in states):
            op.state = "ended" if "ended" in states else "failed"
        elif "answered" in states:
            op.state = "active"
        elif "ringing" in states:
            op.state = "ringing"

    def _dial_into(self, worker: MediaWorker, op: Operation, number: str, presenting: str,
                   replaces: str = "") -> None:  # fmt: skip
        worker.send(Conference(
            id=f"{op.id}/{number}", room=op.id, to=number, from_user=presenting,
            display="Conference", replaces=replaces,
            headers={CONVERSATION_HEADER: op.conversation_id},
        ))  # fmt: skip

    def _new(self, kind: str, worker: MediaWorker, parties: list[str],
             conversation: str | None = None) -> Operation:  # fmt: skip
        self._forget_old()
        op_id = uuid.uuid4().hex[:16]
        op = Operation(op_id, kind, conversation or str(uuid.uuid4()), worker.address, parties)
        self._calls().expect_conversation(op.conversation_id)
        worker.reserved += len(parties)
        self._ops[op_id] = op
        log.info("%s placed", kind, extra={"id": op_id, "worker": worker.address})
        return op

    def _worker(self, slots: int) -> MediaWorker:
        try:
            return self._pool.pick(slots)
        except MediaPoolFullError as err:
            raise CallControlError(503, "media-workers-busy", str(err)) from None

    @staticmethod
    def _check_parties(participants: list[str]) -> None:
        if not 2 <= len(participants) <= MAX_PARTICIPANTS:
            raise CallControlError(
                422,
                "invalid-participants",
                f"a conference has 2 to {MAX_PARTICIPANTS} participants",
            )
        if len(set(participants)) != len(participants):
            raise CallControlError(422, "invalid-participants", "a participant is listed twice")

    def _check_route(self, plan: DialPlan, extension: str, number: str, source: str) -> None:
        decision = plan.decide(extension, number)
        if decision.action == "reject":
            raise CallControlError(
                422 if decision.code != 403 else 403,
                decision.reason,
                f"{extension} cannot call {number}: {decision.reason}",
            )
        outside = outside_number(decision, number)
        if outside is None:
            return
        for check in self._checks:
            refusal = check(extension, outside, source)
            if refusal is not None:
                self._refused(extension, number, source, *refusal)

    def _refused(self, extension: str, number: str, source: str, rule: str, message: str) -> None:
        self._calls().handle(Rejected(
            call_id=f"{source}-{uuid.uuid4().hex}", ts=time.time(), from_user=extension,
            dialled=number, route=source, code=403, reason=rule, refusal=message,
        ))  # fmt: skip
        raise CallControlError(403, "compliance-refused", message, rule=rule, number=number)

    def _forget_old(self) -> None:
        horizon = time.time() - KEEP_S
        for op_id in [k for k, op in self._ops.items() if op.created < horizon]:
            del self._ops[op_id]
