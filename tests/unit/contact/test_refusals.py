"""Supervisors' refusals spoken by a media worker, a logged-out agent told apart, and a
dynamic member's call supervised like a static member's."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from appliance.contact.refusals import TEXTS, SpokenRefusals, prompt_name
from appliance.contact.supervision import Held, SupervisionDecider, SupervisionService
from appliance.contact.supervisors import SupervisionError
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision
from drivers.media.tts import EspeakTts
from tests.unit.contact.test_supervision import SETTINGS, FakeWorker, RecordingCti

STATES = {"1003": "available", "1004": "logged-out", "1009": "on-call"}


class Site:
    def __init__(self, spoken: dict[str, str]) -> None:
        self.worker = FakeWorker()
        self.calls: dict[str, Held] = {}
        self.cti = RecordingCti()
        self.service = SupervisionService(
            SETTINGS, self.calls.get, self.cti, lambda *_: None,
            agent_state=STATES.get, spoken=spoken.get,
        )  # fmt: skip
        self.decider = SupervisionDecider(self.service)

    def dial(self, caller: str, dialled: str) -> Decision | None:
        return self.decider.decide(RouteQuery(caller, dialled, call_id="sup-1"), None)


def test_a_refusal_with_its_prompt_is_spoken_by_a_worker_and_one_without_is_a_sip_error() -> None:
    site = Site({"agent-not-on-call": "refusal-agent-not-on-call"})
    spoken = site.dial("1002", "*901003")
    assert spoken == Decision("media", uri="announce-refusal-agent-not-on-call",
                              route="supervise-refused:agent-not-on-call",
                              recording="never")  # fmt: skip
    assert site.dial("1001", "*901003") == Decision("reject", code=403, reason="not-a-supervisor")
    refused = [e.data["error_id"] for e in site.cti.published]
    assert refused == ["agent-not-on-call", "not-a-supervisor"]


def test_a_logged_out_agent_is_told_apart_from_one_not_on_a_call() -> None:
    site = Site({})
    assert site.dial("1002", "*901004") == Decision("reject", code=480, reason="agent-logged-out")
    with pytest.raises(SupervisionError) as err:
        site.service.call("1004", "1002", "monitor")
    assert err.value.error_id == "agent-logged-out"
    with pytest.raises(SupervisionError) as err:
        site.service.call("1003", "1002", "monitor")
    assert err.value.error_id == "agent-not-on-call"
    assert site.dial("1002", "*901077") == Decision("reject", code=404, reason="agent-not-found")


def test_a_dynamic_members_queue_call_is_supervised_like_a_static_members() -> None:
    site = Site({})
    site.calls["1009"] = Held("caller-9", "support", site.worker)
    decision = site.dial("1002", "*911009")
    assert decision is not None
    assert decision.uri == f"sip:supervise-1009@{site.worker.address}"


def test_refusal_prompts_exist_once_rendered_and_a_recorded_prompt_replaces_the_text(
    tmp_path: Path,
) -> None:
    refusals = SpokenRefusals(EspeakTts(tmp_path), "en", {"refusal-not-a-supervisor"})
    prompts = refusals.prompts()
    assert set(prompts) == {prompt_name(e) for e in TEXTS} - {"refusal-not-a-supervisor"}
    assert refusals.prompt("not-a-supervisor") == "refusal-not-a-supervisor"
    assert refusals.prompt("agent-not-on-call") is None, "not rendered yet"
    assert refusals.prompt("no-such-refusal") is None


async def test_a_refusal_espeak_cannot_render_stays_a_sip_error(tmp_path: Path) -> None:
    refusals = SpokenRefusals(EspeakTts(tmp_path, binary="no-espeak-here"), "en", ())
    await refusals.render()
    assert all(refusals.prompt(e) is None for e in TEXTS)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_rendered_refusals_are_playable_prompts(tmp_path: Path) -> None:
    refusals = SpokenRefusals(EspeakTts(tmp_path), "en", ())
    asyncio.run(refusals.render())
    for error_id in TEXTS:
        name = refusals.prompt(error_id)
        assert name == prompt_name(error_id)
        file = refusals.prompts()[name].file
        assert file is not None
        assert Path(file).stat().st_size > 8000, "less than half a second of speech"
