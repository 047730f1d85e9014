"""Builds the contact-centre slice and joins it to the PBX: the routing chain, the media
workers' ``queue`` events, queue fields in the CDRs, CTI events to the PBX's webhook, the
API routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from fastapi import APIRouter

from appliance.contact.agent_call_routes import build_agent_call_router
from appliance.contact.agent_calls import AgentCalls
from appliance.contact.agent_codes import AgentCodes
from appliance.contact.anchoring import Anchors
from appliance.contact.callback_legs import CallbackLegDecider
from appliance.contact.cti_webhooks import CtiWebhooks
from appliance.contact.decider import QueueDecider
from appliance.contact.feature_codes import AgentCodeDecider
from appliance.contact.member_routes import build_member_router
from appliance.contact.members import Members
from appliance.contact.refusals import SpokenRefusals
from appliance.contact.remote_agents import RemoteAgentDecider, RemoteAgents
from appliance.contact.remote_codes import RemoteAgentCodes
from appliance.contact.routes import build_contact_router
from appliance.contact.screen_pop import ScreenPops
from appliance.contact.service import ContactService
from appliance.contact.settings import ContactSettings
from appliance.contact.supervision import Held, SupervisionDecider, SupervisionService
from appliance.contact.supervision_routes import build_supervision_router
from appliance.ivr.wiring import prompts
from appliance.pbx.deciders import OWN_NUMBERS
from appliance.pbx.errors import PbxNotStartedError
from appliance.pbx.exchange import BranchExchange
from appliance.pbx.media import MediaPoolFullError, MediaWorker
from appliance.store import Store
from drivers.daemon.settings_base import ApiToken
from drivers.media.tts import EspeakTts
from drivers.sip.errors import RpcError
from drivers.sip.evapi import EvapiClient
from drivers.sip.probe import sip_options_status
from drivers.sip.usrloc import registered_users

log = logging.getLogger(__name__)

REGISTRATION_POLL_S = 1.0


class ContactCentre:
    """The slice as one lifecycle component, started after the PBX.

    It also asks Kamailio every ``REGISTRATION_POLL_S`` which extensions are registered
    (``ul.dump``), so agents follow their phones; while Kamailio does not answer, the
    last answer stands.
    """

    name = "contact"

    def __init__(
        self,
        service: ContactService,
        supervision: SupervisionService,
        store: Callable[[], Store],
        kamailio: EvapiClient,
        calls: AgentCalls,
        members: Members,
        refusals: SpokenRefusals,
        remote: RemoteAgents | None = None,
    ) -> None:
        self.service = service
        self.members = members
        self.refusals = refusals
        self.supervision = supervision
        self.calls = calls
        self.pops = ScreenPops()
        service.cti.listeners.append(self.pops.on_event)
        self._store = store
        self._kamailio = kamailio
        self.remote = remote
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Dynamic members and agents' states back from LMDB, the ACD's timer, the
        registration watch, the spoken refusals rendered in the background."""
        self.members.start(self._store())
        await self.service.start(self._store())
        if self.remote is not None:
            await self.remote.start()
        self._tasks = [
            asyncio.create_task(self._registrations(), name="contact-registrations"),
            asyncio.create_task(self.refusals.render(), name="contact-refusals"),
        ]

    async def stop(self) -> None:
        """Stop the watch, the rendering, the timer and the CTI streams."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.remote is not None:
            await self.remote.stop()
        await self.service.stop()

    async def _registrations(self) -> None:
        while True:
            try:
                dump = await self._kamailio.rpc("ul.dump", "brief")
            except RpcError as err:
                log.debug("registrations unknown: %s", err)
            else:
                remote = self.remote.registered if self.remote is not None else frozenset()
                self.service.registrations(registered_users(dump) | remote)
            await asyncio.sleep(REGISTRATION_POLL_S)

    def router(self, tokens: Sequence[ApiToken]) -> APIRouter:
        """The contact-centre API routes (queues, agents, supervisors)."""
        router = APIRouter()
        router.include_router(build_contact_router(self.service, tokens))
        router.include_router(build_supervision_router(self.supervision, tokens))
        router.include_router(build_agent_call_router(self.calls, tokens))
        router.include_router(build_member_router(self.members, tokens))
        return router


def build_contact(
    settings: ContactSettings, pbx: BranchExchange, store: Callable[[], Store], data_dir: Path
) -> ContactCentre:
    """The contact centre joined to ``pbx``; spoken announcements cached under ``data_dir``."""
    tts = EspeakTts(data_dir / "contact" / "tts")
    service = ContactService(settings, prompts(pbx.settings), _cdr_fields(pbx),
                             speak=tts.render, place=_free_worker(pbx))  # fmt: skip
    pbx.chain.add(QueueDecider(settings, service.handing_over), OWN_NUMBERS)
    codes = AgentCodeDecider(settings.agent_codes or AgentCodes(), service)
    if settings.agent_codes is not None:
        pbx.chain.add(codes, OWN_NUMBERS)
    pbx.media_listeners["queue"] = service
    pbx.ivr.queues = lambda: settings.queues.keys()
    pbx.ivr.handover = service.expect
    configured = pbx.settings.media.prompts
    refusals = SpokenRefusals(tts, settings.supervision.language, configured)
    pbx.media.add_prompts(refusals.prompts())
    anchors = _anchors(pbx)
    supervision = SupervisionService(settings, _held(service, pbx, anchors), service.cti,
                                     _cdr_fields(pbx), agent_state=_agent_state(service),
                                     spoken=refusals.prompt, direct=anchors,
                                     queues=lambda: service.acd.queues)  # fmt: skip
    anchors.on_bridged, anchors.on_ended = supervision.anchored, supervision.anchor_ended
    pbx.chain.add(SupervisionDecider(supervision), OWN_NUMBERS)
    pbx.media_listeners["supervise"] = supervision
    pbx.media_listeners["anchor"] = anchors
    calls = AgentCalls(service, lambda: pbx.dialplan.extensions)
    members = Members(service, lambda: pbx.dialplan.extensions, _elsewhere(pbx))
    if pbx.webhooks is not None:
        service.cti.listeners.append(CtiWebhooks(pbx.webhooks, settings.webhook_events).on_event)
    remote = _remote_agents(service, pbx)
    if remote is not None and pbx.intersite is not None:
        pbx.chain.add(RemoteAgentCodes(codes, remote.numbers, pbx.intersite), OWN_NUMBERS)
        legs = CallbackLegDecider(service.calling_back, lambda: pbx.dialplan, pbx.intersite)
        pbx.chain.add(legs, OWN_NUMBERS)
    return ContactCentre(service, supervision, store, pbx.events, calls, members, refusals, remote)


def _elsewhere(pbx: BranchExchange) -> Callable[[str], bool]:
    """Whether the routing table gives an extension to another site."""

    def owned(number: str) -> bool:
        return pbx.intersite is not None and pbx.intersite.owner(number) is not None

    return owned


def _remote_agents(service: ContactService, pbx: BranchExchange) -> RemoteAgents | None:
    """Agents at other sites (members marked ``remote``), when the site routes between
    sites."""
    intersite = pbx.intersite
    if intersite is None:
        return None
    local = pbx.settings.sip_host

    async def probe(host: str, port: int, wait_s: float, *, user: str,
                    headers: Callable[[str], str]) -> int | None:  # fmt: skip
        return await sip_options_status(host, port, wait_s, local, user, headers)

    def numbers() -> set[str]:
        return {n for q in service.acd.queues.values() for n in q.remote}

    remote = RemoteAgents(numbers, intersite, probe, service.settings.remote_poll_s)
    pbx.chain.add(RemoteAgentDecider(remote, intersite, lambda: pbx.dialplan), OWN_NUMBERS)
    return remote


def _anchors(pbx: BranchExchange) -> Anchors:
    """Agents' direct calls moved onto media workers, Kamailio told of each takeover."""

    async def takeover(call_id: str) -> None:
        await pbx.events.rpc("htable.seti", "takeover", call_id, 1)

    return Anchors(lambda: pbx.calls, pbx.media, takeover)


def _held(service: ContactService, pbx: BranchExchange,
          anchors: Anchors) -> Callable[[str], Held | None]:  # fmt: skip
    """The agent's queue call (or anchored call) and the media worker bridging it."""

    def held(agent: str) -> Held | None:
        found = service.agent_call(agent)
        if found is None:
            return anchors.held(agent)
        call_id, queue, holder = found
        worker = next((w for w in pbx.media.workers if w is holder), None)
        return None if worker is None else Held(call_id, queue, worker)

    return held


def _agent_state(service: ContactService) -> Callable[[str], str | None]:
    """The agent's state, static member or dynamic (None: no queue's agent)."""

    def state(agent: str) -> str | None:
        found = service.acd.agents.get(agent)
        return None if found is None else found.state

    return state


def _free_worker(pbx: BranchExchange) -> Callable[[], MediaWorker | None]:
    """The media worker with the most free slots, where a callback is placed (None: all
    full or the PBX not started)."""

    def pick() -> MediaWorker | None:
        try:
            return pbx.media.pick()
        except MediaPoolFullError as err:
            log.warning("no media worker for a callback: %s", err)
            return None

    return pick


def _cdr_fields(pbx: BranchExchange) -> Callable[[str, dict[str, str]], None]:
    """Queue fields into the open call's variables, so its CDR carries them to HQ."""

    def annotate(call_id: str, fields: dict[str, str]) -> None:
        try:
            calls = pbx.calls
        except PbxNotStartedError:
            return
        calls.add_variables(call_id, fields)

    return annotate
