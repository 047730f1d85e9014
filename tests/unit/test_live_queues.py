"""HQ's check of the queue statistics sites report: valid queues shown (and exported to
Prometheus), the rest left out and logged as each status arrives."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from aggregator.sites.live_queues import LiveQueue, live_queues, log_refused
from aggregator.sites.queries import SiteRow
from aggregator.sites.queue_metrics import QueueFamilies
from drivers.sync.protocol import Status


def queue(**change: Any) -> dict[str, Any]:
    reported = {"name": "sales", "number": "700", "waiting": 2, "oldest_entered": 1000.0,
                "agents": {"available": 1, "ringing": 0, "on-call": 2, "wrap-up": 0,
                           "paused": 1, "logged-out": 3},
                "answered": 9, "abandoned": 1, "service_level_percent": 80.0,
                "service_level_s": 20.0}  # fmt: skip
    return {**reported, **change}


def row(queues: Any, online: bool = True, site_id: str = "site-a") -> SiteRow:
    return SiteRow(site_id, online, None, "1.0", 0, 0, {"queues": queues})


def test_a_valid_queue_is_shown_with_its_wait_worked_out_now() -> None:
    (found,) = live_queues([row([queue()])], now=1012.5)
    view = found.view()
    assert view["site_id"] == "site-a"
    assert view["longest_wait_s"] == 12.5
    assert view["agents"]["on-call"] == 2
    assert view["service_level_percent_today"] == 80.0


def test_no_wait_without_waiting_callers_and_no_queues_of_offline_sites() -> None:
    (found,) = live_queues([row([queue(waiting=0, oldest_entered=None)])], now=2000.0)
    assert found.longest_wait_s is None
    assert live_queues([row([queue()], online=False)], now=2000.0) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"waiting": -1},
        {"waiting": "3"},
        {"waiting": True},
        {"waiting": 10**9},
        {"service_level_percent": 101.0},
        {"oldest_entered": "yesterday"},
        {"name": "<script>"},
        {"agents": {"available": 1, "napping": 2}},
        {"agents": {"available": -4}},
        {"service_level_s": 0},
    ],
)
def test_a_queue_with_a_bad_value_is_left_out_and_logged_once_per_status(
    bad: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    reported = [queue(**bad), queue(name="support", number="701")]
    with caplog.at_level(logging.WARNING):
        found = live_queues([row(reported)], now=1001.0)
        assert caplog.records == []
        log_refused(None, "site-a", Status(health={"queues": reported}))  # type: ignore[arg-type]
    assert [q.queue.name for q in found] == ["support"]
    assert [r.error_id for r in caplog.records] == ["queue-stats-invalid"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("garbage", ["queues", {"sales": 1}, [queue()] * 65])
def test_a_report_that_is_no_list_of_queues_is_refused(
    garbage: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert live_queues([row(garbage)], now=1001.0) == []
    log_refused(None, "site-a", Status(health={"queues": garbage}))  # type: ignore[arg-type]
    assert [r.error_id for r in caplog.records] == ["queue-stats-invalid"]  # type: ignore[attr-defined]


def exported(found: list[LiveQueue]) -> dict[tuple[str, ...], float]:
    """Every sample the queue families hold, by name and label values."""
    families = QueueFamilies()
    for live in found:
        families.add(live)
    return {(s.name, *s.labels.values()): s.value for f in families.all() for s in f.samples}


def test_metrics_show_each_queue_as_the_wallboard_does() -> None:
    waiting = queue(answered=9, abandoned=1, service_level_percent=80.0)
    quiet = queue(name="support", waiting=0, oldest_entered=None, service_level_percent=None)
    samples = exported(live_queues([row([waiting, quiet])], now=1012.5))
    sales, support = ("site-a", "sales"), ("site-a", "support")
    assert samples[("callmesh_queue_callers_waiting", *sales)] == 2
    assert samples[("callmesh_queue_longest_wait_seconds", *sales)] == 12.5
    assert samples[("callmesh_queue_longest_wait_seconds", *support)] == 0
    assert samples[("callmesh_queue_agents", *sales, "logged-out")] == 3
    assert samples[("callmesh_queue_calls_today", *sales, "abandoned")] == 1
    assert samples[("callmesh_queue_service_level_ratio", *sales)] == 0.8
    assert ("callmesh_queue_service_level_ratio", *support) not in samples
    assert samples[("callmesh_queue_service_level_threshold_seconds", *support)] == 20


def test_an_offline_site_or_a_refused_queue_has_no_series() -> None:
    offline = live_queues([row([queue()], online=False)], now=1001.0)
    refused = live_queues([row([queue(waiting=-1)])], now=1001.0)
    assert exported(offline) == {}
    assert exported(refused) == {}
