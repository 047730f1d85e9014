"""The aggregator's composition root: database, HTTP API, metrics.

Start-up order: HTTP socket bound, database connected and checked, HTTP serving.
Shutdown in reverse from SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import FastAPI

from aggregator.settings import AggregatorSettings
from appliance import __version__
from drivers.runtime.http import HttpServer
from drivers.runtime.lifecycle import Component, run_until_signalled
from drivers.runtime.observability import Health, add_observability_routes, new_registry

log = logging.getLogger(__name__)


class DatabaseError(Exception):
    """The report database cannot be reached or used."""


class DatabaseComponent:
    """Owns the SQLAlchemy engine."""

    name = "database"

    def __init__(self, settings: AggregatorSettings) -> None:
        self._url = settings.database_url()
        self._data_dir = settings.data_dir
        self.engine: sa.Engine | None = None

    async def start(self) -> None:
        try:
            self._data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DatabaseError(f"cannot create data directory {self._data_dir}: {err}") from None
        engine = sa.create_engine(self._url, pool_pre_ping=True)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as err:
            engine.dispose()
            shown = sa.engine.make_url(self._url).render_as_string(hide_password=True)
            raise DatabaseError(f"cannot use database {shown}: {err.__cause__ or err}") from None
        self.engine = engine

    async def stop(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def check(self) -> tuple[bool, str]:
        """Health: a trivial query answers."""
        if self.engine is None:
            return False, "not connected"
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True, self.engine.dialect.name


def build(settings: AggregatorSettings) -> list[Component]:
    """The aggregator's components in start-up order."""
    facts = {"version": __version__}
    registry = new_registry("aggregator", facts)
    health = Health("aggregator", facts)
    database = DatabaseComponent(settings)
    health.add_check("database", database.check)
    app = FastAPI(title="callmesh aggregator", version=__version__)
    add_observability_routes(app, health, registry)
    http = HttpServer(app, settings.http.host, settings.http.port, name="aggregator-http")
    return [database, http]


async def run(settings: AggregatorSettings) -> None:
    """Run the aggregator until SIGTERM/SIGINT."""
    await run_until_signalled(build(settings))
