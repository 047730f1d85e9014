"""The health monitor publishes every check continuously: a scrape shows a failing check
without anyone calling /healthz."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from drivers.daemon.observability import Health, HealthMonitor


async def until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` for up to 5 s."""
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out after 5 s")


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_gauges_follow_a_check_that_starts_failing_without_a_healthz_call() -> None:
    registry = CollectorRegistry()
    health = Health("test", {})
    state = {"ok": True}
    health.add_check("disk", lambda: (state["ok"], "checked"))
    health.add_check("store", lambda: (True, "open"))
    monitor = HealthMonitor(health, registry, interval_s=0.02)

    async def scenario() -> None:
        await monitor.start()
        try:
            await until(lambda: value(registry, "callmesh_healthy") == 1)
            assert value(registry, "callmesh_health_check_ok", check="disk") == 1
            state["ok"] = False
            await until(lambda: value(registry, "callmesh_healthy") == 0)
            assert value(registry, "callmesh_health_check_ok", check="disk") == 0
            assert value(registry, "callmesh_health_check_ok", check="store") == 1
            state["ok"] = True
            await until(lambda: value(registry, "callmesh_healthy") == 1)
        finally:
            await monitor.stop()

    asyncio.run(scenario())


def test_a_check_that_raises_is_published_as_failing() -> None:
    registry = CollectorRegistry()
    health = Health("test", {})

    def broken() -> tuple[bool, str]:
        raise OSError("disk gone")

    health.add_check("disk", broken)
    healthy, body = HealthMonitor(health, registry).evaluate()
    assert not healthy
    assert body["checks"]["disk"] == {"ok": False, "detail": "OSError: disk gone"}
    assert value(registry, "callmesh_health_check_ok", check="disk") == 0
    assert value(registry, "callmesh_healthy") == 0


def test_a_round_of_checks_that_hangs_marks_the_service_unhealthy() -> None:
    registry = CollectorRegistry()
    health = Health("test", {})
    calls = {"n": 0}

    def slow_after_first() -> tuple[bool, str]:
        calls["n"] += 1
        if calls["n"] > 1:
            time.sleep(0.5)
        return True, "fine"

    health.add_check("slow", slow_after_first)
    monitor = HealthMonitor(health, registry, interval_s=0.01, timeout_s=0.1)

    async def scenario() -> None:
        await monitor.start()
        try:
            await until(lambda: value(registry, "callmesh_healthy") == 1)
            await until(lambda: value(registry, "callmesh_healthy") == 0)
        finally:
            await monitor.stop()

    asyncio.run(scenario())
