"""/healthz and /metrics for every service.

Health is a set of named checks, each returning ``(ok, detail)``; /healthz answers 200
when all pass and 503 otherwise, with every check's detail in the body. Metrics use a
per-service Prometheus registry with process, platform and GC collectors, so two
services in one test process never share counters.
"""

from __future__ import annotations

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
            except Exception as err:
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


def add_observability_routes(app: FastAPI, health: Health, registry: CollectorRegistry) -> None:
    """Mount GET /healthz and GET /metrics on ``app``."""
    checks_ok = Gauge(
        "callmesh_health_check_ok",
        "1 when the named health check passes",
        ["check"],
        registry=registry,
    )
    uptime = Gauge("callmesh_uptime_seconds", "Seconds since start-up", registry=registry)
    uptime.set_function(lambda: time.monotonic() - health.started)

    @app.get("/healthz", tags=["operations"], summary="Service health")
    def healthz() -> JSONResponse:
        healthy, body = health.report()
        for name, result in body["checks"].items():
            checks_ok.labels(check=name).set(1 if result["ok"] else 0)
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
