"""Live queue statistics for HQ's wallboard. Pure.

Per queue: callers waiting, when the longest-waiting one entered (epoch seconds, so the
value only changes when a caller comes or goes, and HQ works the wait out when it
shows it), agents by state, and today's answered, abandoned and service level (the
share of answered plus abandoned calls answered within the queue's threshold). "Today"
is the appliance's local day; the day's counts live in memory and start again at
midnight and after a restart (the CDRs' queue fields are the lasting record).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from appliance.contact.acd import STATES, Acd, local_day


@dataclass
class DayCounts:
    """One queue's outcomes on ``day``."""

    day: str
    answered: int = 0
    answered_in_level: int = 0
    abandoned: int = 0

    @property
    def service_level_percent(self) -> float | None:
        """Answered within the threshold, of answered and abandoned; None before any."""
        offered = self.answered + self.abandoned
        return None if offered == 0 else round(100.0 * self.answered_in_level / offered, 1)


@dataclass(frozen=True)
class QueueStats:
    """What the wallboard shows of one queue."""

    name: str
    number: str
    waiting: int
    oldest_entered: float | None
    agents: dict[str, int]
    answered: int
    abandoned: int
    service_level_percent: float | None
    service_level_s: float


class QueueTally:
    """Today's answered and abandoned calls per queue."""

    def __init__(self, day: Callable[[float], str] = local_day) -> None:
        self._day = day
        self._counts: dict[str, DayCounts] = {}

    def answered(self, queue: str, wait_s: float, level_s: float, now: float) -> None:
        """A caller of ``queue`` was answered after ``wait_s``."""
        counts = self.today(queue, now)
        counts.answered += 1
        counts.answered_in_level += int(wait_s <= level_s)

    def abandoned(self, queue: str, now: float) -> None:
        """A caller of ``queue`` hung up before an agent answered."""
        self.today(queue, now).abandoned += 1

    def today(self, queue: str, now: float) -> DayCounts:
        """The queue's counts of the day ``now`` falls in (fresh ones on a new day)."""
        day = self._day(now)
        counts = self._counts.get(queue)
        if counts is None or counts.day != day:
            counts = self._counts[queue] = DayCounts(day)
        return counts


def queue_stats(acd: Acd, tally: QueueTally, now: float) -> list[QueueStats]:
    """Every queue's live statistics at ``now``."""
    found = []
    for name, settings in acd.queues.items():
        line = acd.waiting[name]
        agents = dict.fromkeys(STATES, 0)
        for number in settings.numbers:
            agents[acd.agents[number].state] += 1
        counts = tally.today(name, now)
        oldest = min((w.entered for w in line), default=None)
        found.append(QueueStats(name, settings.number, len(line), oldest, agents,
                                counts.answered, counts.abandoned,
                                counts.service_level_percent,
                                settings.service_level_s))  # fmt: skip
    return found


def live_part(acd: Acd, tally: QueueTally, now: float) -> dict[str, object]:
    """The ``queues`` status part the sync client sends when it changes."""
    return {"queues": [asdict(s) for s in queue_stats(acd, tally, now)]}
