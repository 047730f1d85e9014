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
        )
