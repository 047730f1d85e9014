"""The appliance's agent and supervisor pages, served at ``/console`` on the local API port.

The same kit as HQ's console (docs/console.md): Jinja2 server-rendered pages, htmx from
the npm registry, in-memory sessions with CSRF tokens (``drivers.web.sessions``). htmx is
the very file HQ serves: the appliance reads it from the one npm install of the
repository, ``aggregator/console/node_modules`` (a path, not an import: ``./run`` keeps
that install). See docs/agent-pages.md.
"""

from __future__ import annotations

import datetime
import logging
import zoneinfo
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from appliance.console.agent_pages import build_agent_pages
from appliance.console.queue_pages import build_queue_pages
from appliance.console.web import HERE, PREFIX, PageError, Pages, install_handlers
from appliance.contact.wiring import ContactCentre
from drivers.daemon.settings_base import ApiToken

log = logging.getLogger(__name__)

NODE_MODULES = HERE.parents[1] / "aggregator" / "console" / "node_modules"
VENDOR_FILES = {"htmx.min.js": "htmx.org/dist/htmx.min.js"}


def mount_agent_pages(
    app: FastAPI,
    contact: ContactCentre,
    tokens: Sequence[ApiToken],
    timezone: str = "UTC",
    node_modules: Path = NODE_MODULES,
) -> Pages:
    """Add the /console pages, their stylesheet and htmx to the appliance's API app."""
    pages = Pages(tokens)
    install_handlers(app, pages)
    zone: datetime.tzinfo = zoneinfo.ZoneInfo(timezone)
    app.include_router(build_agent_pages(pages, contact, zone))
    app.include_router(build_queue_pages(pages, contact))
    app.include_router(_vendor_router(node_modules))
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
    return pages


def _vendor_router(node_modules: Path) -> APIRouter:
    """htmx from the npm install, and nothing else of node_modules."""
    missing = [p for p in VENDOR_FILES.values() if not (node_modules / p).is_file()]
    if missing:
        log.error(
            "agent pages: %s missing: run npm ci in %s", ", ".join(missing), node_modules.parent
        )
    router = APIRouter(prefix=f"{PREFIX}/vendor", include_in_schema=False)

    @router.get("/{name}")
    def vendor(name: str) -> FileResponse:
        path = node_modules / VENDOR_FILES.get(name, "")
        if name not in VENDOR_FILES or not path.is_file():
            raise PageError(404, "unknown-file", f"no library {name!r}; run npm ci")
        return FileResponse(path, media_type="text/javascript")

    return router
