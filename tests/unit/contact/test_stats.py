"""Live queue statistics: waiting, oldest caller, agents by state, today's outcomes."""

from __future__ import annotations

from appliance.contact.acd import Acd
from appliance.contact.settings import QueueSettings
from appliance.contact.stats import QueueTally, live_part, queue_stats


def acd() -> Acd:
    sales = {"number": "700", "agents": ("1001", "1002", "1003"), "service_level_s": 20.0}
    support = {"number": "701", "agents": ("1003",)}
    return Acd({"sales": QueueSettings.model_validate(sales),
                "support": QueueSettings.model_validate(support)})  # fmt: skip


def by_day(now: float) -> str:
    return f"day-{int(now // 86_400)}"


def test_waiting_callers_oldest_entry_and_agents_by_state() -> None:
    core = acd()
    core.login("1001", 0.0)
    core.login("1002", 0.0)
    core.pause("1002", "lunch", 1.0)
    core.enter("a", "sales", "2001", 10.0)
    core.enter("b", "sales", "2002", 12.0)
    core.offers(13.0)
    sales, support = queue_stats(core, QueueTally(by_day), 14.0)
    assert (sales.waiting, sales.oldest_entered) == (2, 10.0)
    assert sales.agents == {"logged-out": 1, "available": 0, "ringing": 1, "on-call": 0,
                            "wrap-up": 0, "paused": 1}  # fmt: skip
    assert (support.waiting, support.oldest_entered) == (0, None)
    assert support.agents["logged-out"] == 1


def test_service_level_counts_answers_within_the_threshold_of_answered_and_abandoned() -> None:
    tally = QueueTally(by_day)
    tally.answered("sales", 5.0, 20.0, 100.0)
    tally.answered("sales", 20.0, 20.0, 100.0)
    tally.answered("sales", 25.0, 20.0, 100.0)
    tally.abandoned("sales", 100.0)
    (sales, _) = queue_stats(acd(), tally, 200.0)
    assert (sales.answered, sales.abandoned, sales.service_level_percent) == (3, 1, 50.0)


def test_no_service_level_before_the_first_call_of_the_day() -> None:
    (sales, _) = queue_stats(acd(), QueueTally(by_day), 0.0)
    assert (sales.answered, sales.abandoned, sales.service_level_percent) == (0, 0, None)


def test_counts_start_again_on_a_new_day() -> None:
    tally = QueueTally(by_day)
    tally.answered("sales", 5.0, 20.0, 86_000.0)
    tally.abandoned("sales", 86_450.0)
    (sales, _) = queue_stats(acd(), tally, 86_500.0)
    assert (sales.answered, sales.abandoned) == (0, 1)


def test_the_status_part_only_changes_when_a_caller_comes_or_goes() -> None:
    core = acd()
    core.enter("a", "sales", "2001", 10.0)
    tally = QueueTally(by_day)
    assert live_part(core, tally, 11.0) == live_part(core, tally, 40.0)
    core.leave("a")
    tally.abandoned("sales", 41.0)
    part = live_part(core, tally, 41.0)
    assert part["queues"][0]["waiting"] == 0  # type: ignore[index]
    assert part["queues"][0]["abandoned"] == 1  # type: ignore[index]
