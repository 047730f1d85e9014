"""Builds the IVR slice for the PBX component: configured flows, registry, TTS, service."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from appliance.ivr.hooks import FlowHooks
from appliance.ivr.legacy import menu_flow
from appliance.ivr.model import Flow
from appliance.ivr.service import IvrService
from appliance.ivr.store import FlowRegistry
from appliance.ivr.validate import Known, parse_flow
from appliance.pbx.settings import PbxSettings
from drivers.media.protocol import Prompt
from drivers.media.tts import EspeakTts


def flow_known(
    pbx: PbxSettings, extensions: Callable[[], Collection[str]]
) -> Callable[[set[str]], Known]:
    """What flows may point at: the site's extensions, ring groups and prompts."""
    groups = {g.number for g in pbx.dialplan.ring_groups}
    prompts = set(pbx.media.prompts)
    return lambda flows: Known(set(extensions()), groups, flows, prompts)


def configured_flows(pbx: PbxSettings, known: Callable[[set[str]], Known]) -> dict[str, Flow]:
    """``pbx.media.ivr`` menus as flows, then ``pbx.ivr.flows`` (FlowInvalidError)."""
    groups = {g.number for g in pbx.dialplan.ring_groups}
    docs = {name: menu_flow(menu, groups) for name, menu in pbx.media.ivr.items()}
    docs.update(pbx.ivr.flows)
    return {name: parse_flow(name, doc, known(set(docs))) for name, doc in docs.items()}


def prompts(pbx: PbxSettings) -> dict[str, Prompt]:
    """The configured prompts as the workers play them."""
    return {name: Prompt(p.file, p.tone_hz, p.on_ms, p.off_ms, p.seconds)
            for name, p in pbx.media.prompts.items()}  # fmt: skip


def build_ivr(
    pbx: PbxSettings,
    extensions: Callable[[], Collection[str]],
    data_dir: Path,
    publish: Callable[[str, dict[str, str]], None],
    zone: str = "UTC",
) -> IvrService:
    """The IVR service with its registry of configured flows (API flows load at start)."""
    known = flow_known(pbx, extensions)
    registry = FlowRegistry(configured_flows(pbx, known), known)
    root = data_dir / "ivr"
    return IvrService(registry, EspeakTts(root / "tts"), FlowHooks(), root / "recordings",
                      prompts(pbx), publish, zone)  # fmt: skip
