"""Queued calls' CDRs for tests and benchmarks, with the queue fields a site writes."""

from __future__ import annotations

from dataclasses import dataclass

from tests.sync_env import T0, make_cdr


@dataclass(frozen=True)
class QueuedCall:
    """One caller's passage through a queue, as the appliance records it."""

    n: int
    queue: str
    outcome: str
    wait_s: float
    talk_s: float = 0.0
    sl_met: bool = False
    start: float = T0
    agent: str = ""
    caller: str | None = None  # the caller's number (None: make_cdr's)
    callback_offered: bool = False  # the caller heard the callback offer

    @property
    def call_id(self) -> str:
        """The queued call's Call-ID (what its call backs' ``callback_of`` names)."""
        return f"queued-{self.n}@test"

    def cdr(self) -> bytes:
        """The caller's CDR with its ``queue_*`` variables (docs/contact-centre.md)."""
        entered = self.start + 2
        end = entered + self.wait_s + (self.talk_s if self.outcome == "answered" else 0.0)
        variables = {
            "queue": self.queue,
            "queue_entered": f"{entered:.3f}",
            "queue_position": "1",
            "queue_priority": "0",
            "queue_outcome": self.outcome,
        }
        if self.outcome != "abandoned":
            variables["queue_wait_s"] = f"{self.wait_s:.1f}"
        if self.callback_offered:
            variables["queue_callback_offered"] = "true"
        if self.outcome == "answered":
            variables |= {"queue_agent": self.agent or "1003",
                          "queue_sl_met": "true" if self.sl_met else "false"}  # fmt: skip
        caller = {"caller": {"number": self.caller, "extension": None, "name": ""}}
        return make_cdr(
            self.n,
            **(caller if self.caller is not None else {}),
            start=self.start,
            answer=self.start + 1,
            end=end,
            duration_s=end - self.start,
            billable_s=end - self.start - 1,
            disposition="answered",
            direction="inbound",
            callee={"number": "700", "extension": None, "name": ""},
            variables=variables,
            call_id=self.call_id,
        )


def call_back(n: int, of: QueuedCall, tries: int, status: str, start: float) -> bytes:
    """The CDR of a try to call ``of``'s caller back (docs/contact-centre.md, "Callback
    retries"): the agent's extension calling the caller, answered or not."""
    answered = status == "answered"
    return make_cdr(
        n,
        start=start,
        answer=start + 5 if answered else None,
        end=start + (65 if answered else 30),
        billable_s=60.0 if answered else 0.0,
        disposition="answered" if answered else "no-answer",
        caller={"number": "1003", "extension": "1003", "name": ""},
        callee={"number": of.caller, "extension": None, "name": ""},
        call_id=f"back-{n}@test",
        variables={
            "callback_of": of.call_id,
            "callback_queue": of.queue,
            "callback_try": str(tries),
            "callback_status": status,
        },
    )
