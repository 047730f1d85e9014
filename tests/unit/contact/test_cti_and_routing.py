"""The CTI stream's fan-out, the queue decider and the contact settings' checks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from appliance.contact.cti import MAX_BACKLOG, CtiStream
from appliance.contact.decider import QueueDecider
from appliance.contact.service import ContactService
from appliance.contact.settings import ContactSettings
from appliance.demo.plan import plan_services
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision
from appliance.service import build
from appliance.settings import ApplianceSettings

QUEUES = {"support": {"number": "700", "agents": ["1003"]}}


def test_every_subscriber_gets_each_event_as_server_sent_events() -> None:
    async def main() -> list[str]:
        cti = CtiStream()
        streams = [cti.follow(), cti.follow()]
        heads = [await anext(s) for s in streams]
        cti.publish("call.queued", call_id="c1", queue="support")
        texts = [await anext(s) for s in streams]
        cti.close()
        ends = [await anext(s, None) for s in streams]
        assert ends == [None, None]
        return heads + texts

    heads_and_texts = asyncio.run(main())
    assert heads_and_texts[:2] == [": subscribed\n\n"] * 2
    for text in heads_and_texts[2:]:
        lines = text.splitlines()
        assert lines[:2] == ["id: 1", "event: call.queued"]
        assert json.loads(lines[2].removeprefix("data: "))["data"]["queue"] == "support"


def test_a_subscriber_too_far_behind_is_cut_off() -> None:
    async def main() -> int:
        cti = CtiStream()
        stream = cti.follow()
        await anext(stream)
        for n in range(MAX_BACKLOG + 1):
            cti.publish("agent.state", n=n)
        received = 0
        async for _ in stream:
            received += 1
        return received

    assert asyncio.run(main()) == MAX_BACKLOG - 1


def test_a_queue_number_and_its_media_user_go_to_the_media_workers() -> None:
    decider = QueueDecider(ContactSettings.model_validate({"queues": QUEUES}))
    expected = Decision("media", uri="queue-support", route="queue:support", recording="never")
    assert decider.decide(RouteQuery("1001", "700"), None) == expected
    assert decider.decide(RouteQuery("1001", "queue-support"), None) == expected
    assert decider.decide(RouteQuery("1001", "701"), None) is None
    assert decider.decide(RouteQuery("x", "700", from_peer=True), None) is None


def test_a_trunk_caller_enters_a_queue_only_as_an_ivr_flow_handed_it_over() -> None:
    handed = {("0301234567", "queue-support")}
    decider = QueueDecider(ContactSettings.model_validate({"queues": QUEUES}),
                           lambda caller, to: (caller, to) in handed)  # fmt: skip
    expected = Decision("media", uri="queue-support", route="queue:support", recording="never")
    trunk = RouteQuery("0301234567", "queue-support", from_trunk=True)
    assert decider.decide(trunk, None) == expected
    assert decider.decide(RouteQuery("0309999999", "queue-support", from_trunk=True), None) is None
    assert decider.decide(RouteQuery("0301234567", "700", from_trunk=True), None) is None


def test_an_ivr_hand_over_to_a_queue_is_expected_for_a_while() -> None:
    clock = [100.0]
    settings = ContactSettings.model_validate({"queues": QUEUES})
    service = ContactService(settings, {}, lambda *_: None, lambda: clock[0])
    service.expect("queue-support", "0301234567", {})
    service.expect("1002", "0307777777", {})
    assert service.handing_over("0301234567", "queue-support")
    assert not service.handing_over("0301234567", "queue-other")
    assert not service.handing_over("0307777777", "1002"), "only a queue is expected"
    clock[0] += 31
    assert not service.handing_over("0301234567", "queue-support")


def test_queues_must_name_extensions_and_need_media_workers(tmp_path: Path) -> None:
    doc = {"site_id": "a", "profile": "branch", "data_dir": str(tmp_path),
           "sip": {"extensions": [{"number": "1003", "password": "secret-pw-1003"}]},
           "contact": {"queues": {"support": {"number": "1003",
                                              "agents": ["1003", "1009"]}}}}  # fmt: skip
    with pytest.raises(ValidationError) as err:
        ApplianceSettings.model_validate(doc)
    message = str(err.value)
    assert "contact.queues.support.agents: 1009 are not in sip.extensions" in message
    assert "contact.queues.support.number: 1003 is an extension" in message
    assert "need pbx.enabled and pbx.media.workers > 0" in message


def test_two_queues_may_not_share_a_number() -> None:
    queues = {"a": QUEUES["support"], "b": QUEUES["support"]}
    with pytest.raises(ValidationError, match="number 700 is used by two queues"):
        ContactSettings.model_validate({"queues": queues})


def test_the_demo_branch_has_a_valid_queue_named_in_the_manifest(tmp_path: Path) -> None:
    branch = next(p for p in plan_services(tmp_path) if p.name == "branch")
    settings = ApplianceSettings.model_validate(branch.config)
    assert settings.contact.queues["support"].numbers == ("1001", "1003", "3001")
    assert branch.extras["contact"]["queues"]["support"]["number"] == "700"
    codes = settings.contact.agent_codes
    assert codes is not None
    assert codes.prompt in settings.pbx.media.prompts
    assert branch.extras["contact"]["feature_codes"]["login"] == codes.login


def test_the_composition_root_starts_the_contact_centre_after_the_pbx(tmp_path: Path) -> None:
    branch = next(p for p in plan_services(tmp_path) if p.name == "branch")
    names = [c.name for c in build(ApplianceSettings.model_validate(branch.config))]
    assert names.index("contact") == names.index("pbx") + 1
