"""The HQ web console: server-rendered pages over the aggregator's slices.

Pages are Jinja2 templates; htmx and Chart.js come from the npm registry
(``aggregator/console/package.json``, installed by ``npm ci`` from the ``run`` script)
and are served from ``node_modules`` under ``/console/vendor``. See docs/console.md.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from aggregator.console.activity_pages import build_activity_pages
from aggregator.console.directory_pages import build_directory_pages
from aggregator.console.fleet_pages import build_fleet_pages
from aggregator.console.pages import build_pages
from aggregator.console.site_pages import build_site_pages
from aggregator.console.wallboard_pages import build_wallboard_pages
from aggregator.console.web import HERE, PREFIX, Console
from aggregator.directory.store import DirectoryStore
from aggregator.settings import AggregatorSettings
from drivers.web.pages import install_handlers, sign_in_router, vendor_router

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
    app.include_router(sign_in_router(console))
    app.include_router(build_pages(console))
    app.include_router(build_site_pages(console))
    app.include_router(build_activity_pages(console))
    app.include_router(build_wallboard_pages(console))
    app.include_router(build_fleet_pages(console))
    app.include_router(build_directory_pages(console, directory))
    app.include_router(vendor_router(PREFIX, NODE_MODULES, VENDOR_FILES))
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
    return console
