"""The appliance's agent and supervisor pages, served at ``/console`` on the local API port.

The same kit as HQ's console (docs/console.md): Jinja2 server-rendered pages, htmx from
the npm registry, in-memory sessions with CSRF tokens (``drivers.web.sessions``). htmx is
the very file HQ serves: the appliance reads it from the one npm install of the
repository, ``aggregator/console/node_modules`` (a path, not an import: ``./run`` keeps
that install). See docs/agent-pages.md.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from appliance.console.agent_pages import build_agent_pages
from appliance.console.queue_pages import build_queue_pages
from appliance.console.web import HERE, PREFIX, Pages, agent_pages
from appliance.contact.wiring import ContactCentre
from drivers.daemon.settings_base import ApiToken
from drivers.web.pages import install_handlers, sign_in_router, vendor_router

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
    pages = agent_pages(tokens)
    install_handlers(app, pages)
    zone: datetime.tzinfo = zoneinfo.ZoneInfo(timezone)
    app.include_router(sign_in_router(pages))
    app.include_router(build_agent_pages(pages, contact, zone))
    app.include_router(build_queue_pages(pages, contact))
    app.include_router(vendor_router(PREFIX, node_modules, VENDOR_FILES))
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
    return pages
