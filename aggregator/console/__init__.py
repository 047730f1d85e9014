"""The HQ web console: server-rendered pages over the aggregator's slices.

Pages are Jinja2 templates; htmx and Chart.js come from the npm registry
(``aggregator/console/package.json``, installed by ``npm ci`` from the ``run`` script)
and are served from ``node_modules`` under ``/console/vendor``. See docs/console.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from aggregator.console.activity_pages import build_activity_pages
from aggregator.console.directory_pages import build_directory_pages
from aggregator.console.fleet_pages import build_fleet_pages
from aggregator.console.pages import build_pages
from aggregator.console.site_pages import build_site_pages
from aggregator.console.wallboard_pages import build_wallboard_pages
from aggregator.console.web import HERE, PREFIX, Console, ConsoleError, install_handlers
from aggregator.directory.store import DirectoryStore
from aggregator.settings import AggregatorSettings

log = logging.getLogger(__name__)

NODE_MODULES = HERE / "node_modules"
VENDOR_FILES = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
}


def mount_console(
    app: FastAPI, settings: AggregatorSettings, engine: Callable[[], sa.Engine]
) -> Console:
    """Add the /console pages, their static files and the installed JavaScript libraries."""
    console = Console(settings, engine)
    install_handlers(app, console)
    directory = DirectoryStore(engine, settings.routing.keep_updates)
    app.include_router(build_pages(console))
    app.include_router(build_site_pages(console))
    app.include_router(build_activity_pages(console))
    app.include_router(build_wallboard_pages(console))
    app.include_router(build_fleet_pages(console))
    app.include_router(build_directory_pages(console, directory))
    app.include_router(_vendor_router())
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
    return console


def _vendor_router() -> APIRouter:
    """The npm libraries the pages load, and nothing else of node_modules."""
    missing = [p for p in VENDOR_FILES.values() if not (NODE_MODULES / p).is_file()]
    if missing:
        log.error("console libraries missing (%s): run npm ci in %s", ", ".join(missing), HERE)
    router = APIRouter(prefix=f"{PREFIX}/vendor", include_in_schema=False)

    @router.get("/{name}")
    def vendor(name: str) -> FileResponse:
        path = NODE_MODULES / VENDOR_FILES.get(name, "")
        if name not in VENDOR_FILES or not path.is_file():
            raise ConsoleError(404, "unknown-file", f"no console library {name!r}; run npm ci")
        return FileResponse(path, media_type="text/javascript")

    return router
