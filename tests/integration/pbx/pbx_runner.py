"""Runs the BranchExchange with its own Store as a process, built as the composition root does.

With ``test_api_port`` in the config, the PBX's call API is served on that port too; a
``contact`` section adds the contact centre (its queues, decider, API routes and the
agent and supervisor pages).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI

from appliance.console import mount_agent_pages
from appliance.contact.settings import ContactSettings
from appliance.contact.wiring import build_contact
from appliance.pbx.assembly import build_exchange
from appliance.pbx.settings import PbxSettings
from appliance.settings import ApplianceSettings
from appliance.store import Store
from drivers.daemon.http import HttpServer
from drivers.daemon.lifecycle import Component, run_until_signalled
from drivers.daemon.logs import configure_logging
from drivers.sip.kamailio_config import Subscriber


class _StoreHolder:
    name = "store"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.store.close()


async def main(data: dict[str, Any]) -> None:
    pbx_settings = PbxSettings.model_validate(data.pop("pbx", {}))
    api_port = data.pop("test_api_port", None)
    contact_doc = data.pop("contact", None)
    settings = ApplianceSettings.model_validate(data)
    configure_logging("info")
    store = Store.open(settings.data_dir / "store", 64)
    subscribers = [Subscriber(e.number, e.password, e.name) for e in settings.sip.extensions]
    pbx = build_exchange(
        pbx_settings,
        settings.site_id,
        settings.sip.domain,
        subscribers,
        lambda: store,
        settings.data_dir,
    )
    components: list[Component] = [_StoreHolder(store), pbx]
    app = FastAPI()
    app.include_router(pbx.router(settings.api.tokens))
    if contact_doc is not None:
        contact = build_contact(
            ContactSettings.model_validate(contact_doc), pbx, lambda: store, settings.data_dir
        )
        app.include_router(contact.router(settings.api.tokens))
        mount_agent_pages(app, contact, settings.api.tokens)
        components.append(contact)
    if api_port is not None:
        components.append(HttpServer(app, "127.0.0.1", int(api_port), "api"))
    await run_until_signalled(components)


if __name__ == "__main__":
    asyncio.run(main(yaml.safe_load(Path(sys.argv[1]).read_text())))
