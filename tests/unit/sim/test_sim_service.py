"""The SIM service over a temporary LMDB store: persistence, switching, HQ commands."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.settings import SimSettings
from appliance.sim import CallOutcome, Pick, Refusal, SimIdentity, SimService
from appliance.sim.fake import FakeSimChannel
from appliance.sim.model import ChannelState
from appliance.store import StateStore, Store

A, B, C = "8949000000000000011", "8949000000000000012", "8949000000000000021"
NOON = datetime.datetime(2026, 3, 2, 11, tzinfo=datetime.UTC)


def settings(**extra: object) -> SimSettings:
    base: dict[str, object] = {
        "strategy": "fixed-order",
        "switch_cooldown_s": 0,
        "max_failures": 2,
        "groups": {"default": {"calls_per_day": 2}},
        "sims": [{"iccid": C, "limits": {"max_call_s": 120}}],
    }
    return SimSettings.model_validate({**base, **extra})


def fakes() -> list[FakeSimChannel]:
    return [
        FakeSimChannel("gsm-1", [SimIdentity(A, imsi="262011"), SimIdentity(B, imsi="262012")]),
        FakeSimChannel("gsm-2", [SimIdentity(C)]),
    ]


class Box:
    """A service on a store that can be closed and opened again, like a restart.

    Unless ``inventoried`` is False, the store says every channel's slots were read
    already and only the selected slots' SIMs are known (what a site knew before it
    read standby slots), so the policy tests see no inventory switches.
    """

    def __init__(self, path: Path, sim_settings: SimSettings, inventoried: bool = True) -> None:
        self.path, self.settings = path, sim_settings
        self.store: Store | None = None
        self.channels = fakes()
        self.inventoried = inventoried

    async def start(self) -> SimService:
        self.store = Store.open(self.path, map_size_mb=16)
        store = self.store
        if self.inventoried and StateStore(store).get("sim:inventoried") is None:
            state = StateStore(store)
            state.put("sim:inventoried", [c.channel for c in self.channels])
            for c in self.channels:
                if (sim := c.slots[c.slot]) is not None:
                    state.put(f"sim:slots:{c.channel}", {str(c.slot): sim.iccid})
        service = SimService(self.settings, "Europe/Berlin", lambda: store, self.channels)
        await service.start()
        self.service = service
        return service

    async def restart(self) -> SimService:
        await self.stop()
        return await self.start()

    async def stop(self) -> None:
        await self.service.stop()
        assert self.store is not None
        self.store.close()


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    box = Box(tmp_path / "store", settings())
    await box.start()
    yield box
    await box.stop()


async def one_call(service: SimService, answered: bool = True, seconds: float = 30.0) -> Pick:
    picked = service.pick(NOON)
    assert isinstance(picked, Pick), picked
    await service.call_ended(CallOutcome(picked.channel, picked.iccid, NOON, answered, seconds))
    return picked


async def test_counters_survive_a_restart(box: Box) -> None:
    await one_call(box.service)
    service = await box.restart()
    view = service.view(A, NOON)
    assert (view.usage.calls_today, view.usage.connected_s_today) == (1, 30.0)


async def test_a_picked_channel_is_busy_until_its_call_ends(box: Box) -> None:
    first = box.service.pick(NOON)
    second = box.service.pick(NOON)
    assert isinstance(first, Pick)
    assert isinstance(second, Pick)
    assert (first.channel, second.channel) == ("gsm-1", "gsm-2")
    assert second.max_call_s == 120
    refused = box.service.pick(NOON)
    assert isinstance(refused, Refusal)
    assert refused.reasons == {"gsm-1": "busy", "gsm-2": "busy"}
    box.service.release("gsm-1")
    assert isinstance(box.service.pick(NOON), Pick)


async def test_a_trunk_group_picks_among_its_channels_by_its_own_strategy(box: Box) -> None:
    only = box.service.pick(NOON, among=["gsm-2"])
    assert isinstance(only, Pick)
    assert only.channel == "gsm-2"
    refused = box.service.pick(NOON, among=["gsm-2"])
    assert isinstance(refused, Refusal)
    assert refused.reasons == {"gsm-2": "busy"}
    box.service.release("gsm-2")
    await one_call(box.service)
    least = box.service.pick(NOON, strategy="least-used")
    assert isinstance(least, Pick)
    assert least.channel == "gsm-2"


async def test_an_incoming_call_holds_an_idle_channel_only(box: Box) -> None:
    assert box.service.hold("gsm-1")
    assert not box.service.hold("gsm-1")
    picked = box.service.pick(NOON)
    assert isinstance(picked, Pick)
    assert picked.channel == "gsm-2"


async def test_a_sim_at_its_limit_hands_over_to_the_other_slot_with_a_logged_reason(
    box: Box,
) -> None:
    await one_call(box.service)
    await one_call(box.service)
    await box.service.evaluate(NOON)
    assert box.channels[0].selects == [1]
    [switch] = box.service.switches
    assert (switch["from_iccid"], switch["to_iccid"], switch["reason"]) == (A, B, "calls-per-day")
    assert (await one_call(box.service)).iccid == B
    service = await box.restart()
    assert service.switches == [switch]
    statuses = {r["iccid"]: r["status"] for r in service.records(NOON)}
    assert statuses[A] == "standby"


async def test_failed_calls_in_a_row_stop_a_sim(box: Box) -> None:
    await one_call(box.service, answered=False)
    await one_call(box.service, answered=False)
    assert box.service.view(A, NOON).usage.failure_streak == 2
    await box.service.evaluate(NOON)
    assert box.channels[0].selects == [1]
    assert box.service.switches[-1]["reason"] == "failure-streak"


async def test_a_sim_that_needs_review_keeps_working_and_is_never_switched_for_it(
    tmp_path: Path,
) -> None:
    box = Box(
        tmp_path / "s",
        settings(groups={}, max_failures=9, review_window=5, review_min_baseline_calls=5),
    )
    box.channels = box.channels[:1]
    service = await box.start()
    for answered in [True] * 10 + [False, True, False, False, True] * 1 + [False] * 4:
        await one_call(service, answered=answered)
    usage = service.view(A, NOON).usage
    assert usage.review.startswith("answer rate")
    await service.evaluate(NOON)
    assert box.channels[0].selects == []
    assert service.records(NOON)[0]["needs_review"] == usage.review
    ok, _ = await service.apply_command("c-1", "sim-clear-review", {"iccid": A})
    assert ok
    assert service.view(A, NOON).usage.review == ""
    await box.stop()


async def test_hq_commands_are_applied_once_and_survive_a_restart(box: Box) -> None:
    limits = {"iccid": A, "limits": {"calls_per_day": 0}}
    assert await box.service.apply_command("c-1", "sim-set-limits", limits) == (
        True,
        f"limits of {A} set",
    )
    await box.service.apply_command("c-2", "sim-disable", {"iccid": C})
    again = await box.service.apply_command("c-1", "sim-set-limits", {"iccid": A, "limits": {}})
    assert again == (True, f"limits of {A} set")
    service = await box.restart()
    assert service.limits(A).calls_per_day == 0
    assert service.view(C, NOON).disabled
    bad = await service.apply_command("c-3", "sim-set-limits", {"iccid": A, "limits": {"x": 1}})
    assert bad == (False, "limits: unknown limit 'x'")


async def test_an_operator_forced_slot_is_selected_once_the_channel_is_idle(box: Box) -> None:
    picked = box.service.pick(NOON)
    assert isinstance(picked, Pick)
    await box.service.apply_command("c-1", "sim-select-slot", {"channel": "gsm-1", "slot": 1})
    await box.service.evaluate(NOON)
    assert box.channels[0].selects == []
    await box.service.call_ended(CallOutcome("gsm-1", A, NOON, True, 10))
    await box.service.evaluate(NOON)
    assert box.channels[0].selects == [1]
    assert box.service.switches[-1]["reason"] == "operator"
    await box.service.evaluate(NOON)
    assert box.channels[0].selects == [1]


async def test_hq_group_limits_and_group_moves_layer_under_the_sims_own(box: Box) -> None:
    await box.service.apply_command(
        "c-1", "sim-set-group-limits", {"group": "vip", "limits": {"calls_per_day": 50}}
    )
    await box.service.apply_command("c-2", "sim-set-group", {"iccid": C, "group": "vip"})
    assert box.service.limits(C).calls_per_day == 50
    assert box.service.limits(C).max_call_s == 120
    assert box.service.limits(A).calls_per_day == 2


async def test_health_counts_the_channels_that_can_take_calls(box: Box) -> None:
    assert box.service.check() == (True, "2 of 2 GSM channels can take calls")
    await box.service.apply_command("c-1", "sim-retire", {"iccid": C})
    assert box.service.check() == (True, "1 of 2 GSM channels can take calls")


@pytest.mark.parametrize(("grace_s", "selects"), [(120.0, []), (0.0, [1])])
async def test_an_unregistered_sim_is_switched_only_after_the_grace_period(
    tmp_path: Path, grace_s: float, selects: list[int]
) -> None:
    box = Box(tmp_path / "store", settings(unregistered_grace_s=grace_s))
    box.channels[0].unregistered.add(A)
    service = await box.start()
    try:
        await service.evaluate(NOON)
        assert box.channels[0].selects == selects
    finally:
        await box.stop()


@pytest.fixture
async def fresh(tmp_path: Path) -> AsyncIterator[Box]:
    box = Box(tmp_path / "store", settings(), inventoried=False)
    await box.start()
    yield box
    await box.stop()


def statuses(service: SimService) -> dict[str, tuple[str, int, str]]:
    return {r["iccid"]: (r["status"], r["slot"], r["imsi"]) for r in service.records(NOON)}


async def test_the_first_start_reads_the_standby_sim_and_returns_to_the_selected_slot(
    fresh: Box,
) -> None:
    assert fresh.channels[0].selects == [1, 0]
    assert fresh.channels[1].selects == []
    assert statuses(fresh.service) == {
        A: ("active", 0, "262011"),
        B: ("standby", 1, "262012"),
        C: ("active", 0, ""),
    }
    service = await fresh.restart()
    await service.evaluate(NOON)
    await service.inventory_done()
    assert fresh.channels[0].selects == [1, 0]
    assert statuses(service)[B] == ("standby", 1, "262012")


async def test_a_sim_inserted_during_a_call_is_read_once_the_call_has_ended(box: Box) -> None:
    new, other = "8949000000000000013", "8949000000000000014"
    channel = box.channels[0]
    picked = box.service.pick(NOON, among=["gsm-1"])
    assert isinstance(picked, Pick)
    box.service.report(replace(channel.state(), sim=None))
    channel.slots = [SimIdentity(other), SimIdentity(new)]
    box.service.report(channel.state())
    await box.service.evaluate(NOON)
    await box.service.inventory_done()
    assert channel.selects == []
    await box.service.call_ended(CallOutcome("gsm-1", A, NOON, True, 10))
    await box.service.evaluate(NOON)
    refused = box.service.pick(NOON, among=["gsm-1"])
    assert isinstance(refused, Refusal)
    assert refused.reasons == {"gsm-1": "busy"}
    await box.service.inventory_done()
    assert channel.selects == [1, 0]
    assert statuses(box.service)[new] == ("standby", 1, "")
    assert isinstance(box.service.pick(NOON, among=["gsm-1"]), Pick)


async def test_a_new_card_in_the_selected_slot_has_every_slot_read_again(
    box: Box,
) -> None:
    new, other = "8949000000000000013", "8949000000000000014"
    channel = box.channels[0]
    channel.slots = [None, SimIdentity(new, imsi="262013")]
    box.service.report(channel.state())
    channel.slots = [SimIdentity(A, imsi="262011"), SimIdentity(new, imsi="262013")]
    box.service.report(channel.state())
    await box.service.evaluate(NOON)
    assert channel.selects == [], "the same card back in its slot: nothing new to read"
    channel.slots = [SimIdentity(other, imsi="262014"), SimIdentity(new, imsi="262013")]
    box.service.report(channel.state())
    await box.service.evaluate(NOON)
    await box.service.inventory_done()
    assert channel.selects == [1, 0]
    found = statuses(box.service)
    assert found[new] == ("standby", 1, "262013")
    assert found[other] == ("active", 0, "262014")
    assert B not in found


async def test_a_failed_slot_read_keeps_what_was_known_and_the_channel_goes_home(
    tmp_path: Path,
) -> None:
    fresh = Box(tmp_path / "store", settings(), inventoried=False)
    channel = fresh.channels[0]

    async def broken() -> ChannelState:
        if channel.slot == 1:
            raise TimeoutError("no answer")
        return channel.state()

    channel.read_state = broken  # type: ignore[method-assign]
    service = await fresh.start()
    try:
        assert channel.selects == [1, 0]
        assert channel.slot == 0
        assert set(statuses(service)) == {A, C}
        assert isinstance(service.pick(NOON, among=["gsm-1"]), Pick)
    finally:
        await fresh.stop()
