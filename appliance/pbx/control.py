"""Call control the local API asks for, and the watch that ends calls whose media stopped.

``CallControl`` hangs up answered calls (Kamailio's ``dlg.end_dlg``: BYE to both ends),
starts and stops recording on demand (rtpengine ``start``/``stop recording``, with the
ports each side sends to taken from ``query`` because such a recording's metadata has
no SDPs), moves a call into a three-way conference, reports trunk registrations, and
runs the media watch: a phone that loses power or network never sends BYE, and
rtpengine's per-stream ``last packet`` time shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from appliance.pbx.calls import CallService
from appliance.pbx.errors import CallControlError
from appliance.pbx.originate import OriginationService
from appliance.pbx.settings import PbxSettings
from drivers.sip.errors import NgError, RpcError
from drivers.sip.evapi import EvapiClient
from drivers.sip.ng import NgClient

log = logging.getLogger(__name__)

UAC_REG_ONLINE = 1 << 2


def silent_side(query: Mapping[str, Any], caller_tag: str, since: float) -> str | None:
    """``caller`` or ``callee`` when that side sent no RTP after ``since`` (ng ``query``).

    An empty query (rtpengine no longer knows the call) means both: ``caller``.
    """
    last: dict[str, float] = {}
    for tag, monologue in dict(query.get("tags") or {}).items():
        name = tag.decode() if isinstance(tag, bytes) else str(tag)
        side = "caller" if name == caller_tag else "callee"
        with contextlib.suppress(KeyError, IndexError, TypeError, ValueError):
            last[side] = float(monologue["medias"][0]["streams"][0]["last packet"])
    if not last:
        return "caller"
    for side in ("caller", "callee"):
        if last.get(side, 0.0) < since:
            return side
    return None


def rtp_ports(query: Mapping[str, Any], caller_tag: str) -> list[int] | None:
    """[caller, callee]: the rtpengine ports each side sends RTP to, from an ng ``query``."""
    ports: dict[bool, int] = {}
    for tag, monologue in dict(query.get("tags") or {}).items():
        name = tag.decode() if isinstance(tag, bytes) else str(tag)
        with contextlib.suppress(KeyError, IndexError, TypeError, ValueError):
            ports[name == caller_tag] = int(monologue["medias"][0]["streams"][0]["local port"])
    return [ports[True], ports[False]] if len(ports) == 2 else None


class CallControl:
    """Hang-up, recording, three-way and trunk state for the API; the media watch."""

    def __init__(
        self,
        settings: PbxSettings,
        calls: Callable[[], CallService],
        events: EvapiClient,
        ng: NgClient,
        originations: OriginationService,
        gsm_channels: Callable[[], Awaitable[list[dict[str, Any]]]],
    ) -> None:
        self._settings = settings
        self._calls = calls
        self._events = events
        self._ng = ng
        self.originations = originations
        self._gsm_channels = gsm_channels

    async def gsm_channels(self) -> list[dict[str, Any]]:
        """Every GSM channel with its call and live frame counters (from the component)."""
        return await self._gsm_channels()

    async def hangup(self, call_id: str) -> dict[str, Any]:
        """End an answered call: Kamailio sends BYE to both ends; returns the CDR."""
        call = self._calls().get(call_id)
        if call is None:
            raise CallControlError(404, "call-not-found", f"no call {call_id} in progress")
        if call.get("answer") is None or not call.get("dialog"):
            raise CallControlError(409, "call-not-answered", "only answered calls can be hung up")
        try:
            await self._events.rpc("dlg.end_dlg", *call["dialog"])
        except RpcError as err:
            raise CallControlError(502, "sip-proxy-error", str(err)) from None
        await self._release_media(call)
        cdr = self._calls().close(call_id, "answered", "api-hangup")
        if cdr is None:
            raise CallControlError(404, "call-not-found", f"call {call_id} ended meanwhile")
        return cdr

    async def three_way(self, call_id: str, number: str) -> dict[str, Any]:
        """Move an answered call into a conference room and dial ``number`` into it.

        The call and ``number`` are vetted first (compliance included), so a refusal
        leaves the call as it was. Kamailio is then told that the call is being taken
        over, so the BYE of the first end to be replaced does not reach the other end
        before its own Replaces.
        """
        call = self.originations.vet_three_way(call_id, number)
        try:
            await self._events.rpc("htable.seti", "takeover", call_id, 1)
        except RpcError as err:
            raise CallControlError(502, "sip-proxy-error", str(err)) from None
        return self.originations.three_way(call, number)

    async def trunks(self) -> list[dict[str, Any]]:
        """Every trunk with its registration state (Kamailio's ``uac.reg_dump``)."""
        states: dict[str, dict[str, Any]] = {}
        if any(t.auth and t.auth.registration for t in self._settings.dialplan.trunks):
            try:
                dump = await self._events.rpc("uac.reg_dump")
            except RpcError as err:
                raise CallControlError(502, "sip-proxy-error", str(err)) from None
            states = {str(r.get("l_uuid")): r for r in dump or [] if isinstance(r, dict)}
        result = []
        for trunk in self._settings.dialplan.trunks:
            entry: dict[str, Any] = {"name": trunk.name, "address": f"{trunk.host}:{trunk.port}",
                                     "auth": trunk.auth is not None, "register": False}  # fmt: skip
            if trunk.auth is not None and trunk.auth.registration:
                state = states.get(trunk.name, {})
                online = bool(int(state.get("flags") or 0) & UAC_REG_ONLINE)
                expires = state.get("diff_expires") if online else None
                entry.update(register=True, registered=online, expires_in_s=expires)
            result.append(entry)
        return result

    async def _release_media(self, call: dict[str, Any]) -> None:
        """rtpengine lets go of a call Kamailio ended: its own BYEs pass no route that
        deletes the call, so the recording would wait for the media timeout."""
        if not self._settings.anchor_media:
            return
        try:
            await self._ng.command("delete", **{"call-id": call["call_id"],
                                                "from-tag": call["caller_tag"]})  # fmt: skip
        except NgError as err:
            log.warning("media relay kept call %s after its hang-up: %s", call["call_id"], err)

    async def set_recording(self, call_id: str, on: bool) -> dict[str, Any]:
        """Start or stop recording an answered call (policy ``always`` or ``on-demand``)."""
        call = self._calls().get(call_id)
        if call is None:
            raise CallControlError(404, "call-not-found", f"no call {call_id} in progress")
        if call.get("recording") == "never" or not self._settings.record_calls:
            raise CallControlError(403, "recording-not-allowed", "this call may not be recorded")
        if call.get("answer") is None:
            raise CallControlError(409, "call-not-answered", "the call is not answered yet")
        command = "start recording" if on else "stop recording"
        ids = {"call-id": call_id, "from-tag": call["caller_tag"]}
        try:
            ports = rtp_ports(await self._ng.command("query", **ids), call["caller_tag"])
            await self._ng.command(command, **ids)
        except NgError as err:
            raise CallControlError(502, "media-relay-error", str(err)) from None
        if on:
            self._calls().update(call_id, record=True, rtp_ports=ports)
        return {"call_id": call_id, "recording": on}

    async def watch_media(self) -> None:
        """End answered calls where one side sent no RTP for ``media_timeout_s``.

        A phone that loses power or network never sends BYE; rtpengine's per-stream
        ``last packet`` time shows it. Kamailio sends BYE to both ends and the CDR is
        ``interrupted`` (``media-timeout``), hung up by the silent side.
        """
        timeout = self._settings.media_timeout_s
        while True:
            await asyncio.sleep(max(1.0, timeout / 3))
            now = time.time()
            for call in self._calls().live_calls():
                if call.get("answer") is None or not call.get("dialog"):
                    continue
                if now - float(call["answer"]) < timeout:
                    continue
                ids = {"call-id": call["call_id"], "from-tag": call["caller_tag"]}
                try:
                    query = await self._ng.command("query", **ids)
                except NgError as err:
                    if "unknown" not in str(err).lower():
                        continue
                    query = {}
                side = silent_side(query, call["caller_tag"], now - timeout)
                if side is None:
                    continue
                log.warning("no RTP from the %s for %d s: ending %s", side, timeout,
                            call["call_id"])  # fmt: skip
                with contextlib.suppress(RpcError):
                    await self._events.rpc("dlg.end_dlg", *call["dialog"])
                self._calls().close(call["call_id"], "interrupted", "media-timeout", side)
