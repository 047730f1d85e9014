"""/healthz and /metrics for every service.

Health is a set of named checks, each returning ``(ok, detail)``; /healthz answers 200
when all pass and 503 otherwise, with every check's detail in the body. A HealthMonitor
runs the checks every few seconds (and on every /healthz request) and publishes them as
``callmesh_health_check_ok{check}`` and ``callmesh_healthy``, so a scrape shows the truth
without anyone calling /healthz. Metrics use a per-service Prometheus registry with
process, platform and GC collectors, so two services in one test process never share
counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector

Check = Callable[[], tuple[bool, str]]

log = logging.getLogger(__name__)

HEALTH_INTERVAL_S = 5.0
HEALTH_TIMEOUT_S = 10.0


class Health:
    """Named health checks plus static facts about the service."""

    def __init__(self, service: str, facts: dict[str, Any]) -> None:
        self.service = service
        self.facts = facts
        self.started = time.monotonic()
        self._checks: dict[str, Check] = {}

    def add_check(self, name: str, check: Check) -> None:
        """Register a check that /healthz runs on every request."""
        self._checks[name] = check

    def report(self) -> tuple[bool, dict[str, Any]]:
        """Run every check; a check that raises counts as failed with its error."""
        results: dict[str, dict[str, Any]] = {}
        for name, check in self._checks.items():
            try:
                ok, detail = check()
            except Exception as err:  # noqa: BLE001 - a broken check is a failed check, not a crash
                ok, detail = False, f"{type(err).__name__}: {err}"
            results[name] = {"ok": ok, "detail": detail}
        healthy = all(r["ok"] for r in results.values())
        body = {
            "status": "ok" if healthy else "failing",
            "service": self.service,
            **self.facts,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "checks": results,
        }
        return healthy, body


def new_registry(service: str, facts: dict[str, str]) -> CollectorRegistry:
    """A registry with process/platform/GC metrics and ``callmesh_service_info``."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    labels = {"service": service, **facts}
    info = Gauge(
        "callmesh_service_info", "Static facts about this service", list(labels), registry=registry
    )
    info.labels(**labels).set(1)
    return registry


class HealthMonitor:
    """Evaluates the health checks every ``interval_s`` and publishes them as gauges.

    A lifecycle component: start it after the parts its checks look at, so the first
    evaluation sees them running. Checks run in a worker thread (as /healthz runs them),
    bounded by ``timeout_s``; a round that times out marks the service unhealthy.
    """

    name = "health-monitor"

    def __init__(
        self,
        health: Health,
        registry: CollectorRegistry,
        interval_s: float = HEALTH_INTERVAL_S,
        timeout_s: float = HEALTH_TIMEOUT_S,
    ) -> None:
        self.health = health
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self._checks = Gauge(
            "callmesh_health_check_ok",
            "1 when the named health check passes",
            ["check"],
            registry=registry,
        )
        self._healthy = Gauge(
            "callmesh_healthy", "1 when every health check passes", registry=registry
        )
        uptime = Gauge("callmesh_uptime_seconds", "Seconds since start-up", registry=registry)
        uptime.set_function(lambda: time.monotonic() - health.started)

    def evaluate(self) -> tuple[bool, dict[str, Any]]:
        """Run every check now and publish the result."""
        healthy, body = self.health.report()
        for name, result in body["checks"].items():
            self._checks.labels(check=name).set(1 if result["ok"] else 0)
        self._healthy.set(1 if healthy else 0)
        return healthy, body

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="health-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(asyncio.to_thread(self.evaluate), self._timeout_s)
            except TimeoutError:
                log.warning("health checks took longer than %ss", self._timeout_s)
                self._healthy.set(0)
            await asyncio.sleep(self._interval_s)


def add_observability_routes(
    app: FastAPI, monitor: HealthMonitor, registry: CollectorRegistry
) -> None:
    """Mount GET /healthz and GET /metrics on ``app``."""

    @app.get("/healthz", tags=["operations"], summary="Service health")
    def healthz() -> JSONResponse:
        healthy, body = monitor.evaluate()
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
