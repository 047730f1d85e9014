"""The HQ API (FastAPI): each slice's /api/v1 routes under one auth and error shape.

Shared by every slice: ``auth`` (tokens, roles, site scope), ``errors`` (the error body),
``params`` (format, time zone, times, spans) and ``csv_export``. The routes and their
SQL belong to the slices: sites, CDRs and reports, queue and agent reports, recordings,
directory, fleet, SMS, hotel, enrolment.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI

from aggregator.api.errors import install_error_handlers
from aggregator.cdrs.routes import build_cdrs_router
from aggregator.directory.routes import build_directory_router
from aggregator.doctor.routes import build_doctor_router
from aggregator.enrolment.routes import build_enrolment_router
from aggregator.fleet.routes import build_fleet_router
from aggregator.hotel.routes import build_hotel_router
from aggregator.queues.routes import build_queues_router
from aggregator.recording_routes import build_recordings_router
from aggregator.settings import AggregatorSettings
from aggregator.sites.routes import build_sites_router
from aggregator.sms.routes import build_sms_router
from drivers.daemon.api_docs import ErrorBody, error_responses

RouterBuilder = Callable[[AggregatorSettings, Callable[[], sa.Engine]], APIRouter]
SLICES: tuple[RouterBuilder, ...] = (
    build_sites_router,
    build_cdrs_router,
    build_queues_router,
    build_recordings_router,
    build_directory_router,
    build_fleet_router,
    build_sms_router,
    build_hotel_router,
    build_enrolment_router,
    build_doctor_router,
)


def mount_api(app: FastAPI, settings: AggregatorSettings, engine: Callable[[], sa.Engine]) -> None:
    """Add every slice's /api/v1 routes and the common error shape to ``app``."""
    install_error_handlers(app)
    errors = error_responses(ErrorBody)
    for build in SLICES:
        app.include_router(build(settings, engine), responses=errors)
