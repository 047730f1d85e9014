"""HQ's refusals: every one counted, logged without flooding, and budgeted per site."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, Counter

from aggregator.refusals import Refusals


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def refusals(registry: CollectorRegistry, clock: Clock) -> Refusals:
    counter = Counter("refused", "", ["site", "stream", "error_id"], registry=registry)
    return Refusals(counter, rate=10, burst=100, log_interval_s=5, clock=clock)


def test_every_refusal_is_counted_per_site_stream_and_error_id(
    registry: CollectorRegistry,
) -> None:
    counted = refusals(registry, Clock())
    counted.refused("site-a", "cdr", "record-bad-field", "duration_s must be a number", 3)
    counted.refused("site-b", "sms", "record-bad-enum", "direction", 1)
    labels = {"site": "site-a", "stream": "cdr", "error_id": "record-bad-field"}
    assert registry.get_sample_value("refused_total", labels) == 3
    labels = {"site": "site-b", "stream": "sms", "error_id": "record-bad-enum"}
    assert registry.get_sample_value("refused_total", labels) == 1


def test_a_flood_of_refusals_logs_one_line_per_interval_with_the_count(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    counted = refusals(registry, clock)
    with caplog.at_level(logging.WARNING, logger="aggregator.refusals"):
        for _ in range(50):
            counted.refused("site-a", "message", "bad-msgpack", "not msgpack")
            clock.now += 0.2
        counted.refused("site-a", "message", "bad-msgpack", "not msgpack")
    lines = [r for r in caplog.records if r.getMessage() == "refused from a site"]
    assert [r.count for r in lines] == [1, 25, 25]  # type: ignore[attr-defined]


def test_a_site_past_its_budget_is_throttled_until_the_budget_refills(
    registry: CollectorRegistry,
) -> None:
    clock = Clock()
    counted = refusals(registry, clock)
    counted.refused("site-bad", "cdr", "record-bad-field", "x", 100)
    assert not counted.throttled("site-bad")
    counted.refused("site-bad", "cdr", "record-bad-field", "x", 5)
    assert counted.throttled("site-bad")
    assert not counted.throttled("site-good")
    clock.now += 1.0
    assert not counted.throttled("site-bad")


def test_hq_own_failures_are_counted_but_never_charged_to_the_site(
    registry: CollectorRegistry,
) -> None:
    counted = refusals(registry, Clock())
    counted.refused("site-a", "message", "db-unavailable", "retry later", 1000)
    assert not counted.throttled("site-a")
    labels = {"site": "site-a", "stream": "message", "error_id": "db-unavailable"}
    assert registry.get_sample_value("refused_total", labels) == 1000
