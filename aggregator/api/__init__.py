"""The HQ API (FastAPI): sites, CDRs, reports, CSV export, recordings, directory, fleet, SMS."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from fastapi import FastAPI

from aggregator.api.errors import install_error_handlers
from aggregator.api.routes import build_router
from aggregator.api.sms import build_sms_router
from aggregator.directory.routes import build_directory_router
from aggregator.fleet.routes import build_fleet_router
from aggregator.settings import AggregatorSettings
from drivers.daemon.api_docs import ErrorBody, error_responses


def mount_api(app: FastAPI, settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> None:
    """Add the /api/v1 routes and the common error shape to ``app``."""
    install_error_handlers(app)
    errors = error_responses(ErrorBody)
    app.include_router(build_router(settings, engine), responses=errors)
    app.include_router(build_directory_router(settings, engine), responses=errors)
    app.include_router(build_fleet_router(settings, engine), responses=errors)
    app.include_router(build_sms_router(settings, engine), responses=errors)
