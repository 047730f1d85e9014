"""Every simulator fault mode, and recovery from wedges and re-enumeration."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from drivers.modem.calls import CallEvent
from drivers.modem.errors import RecoveryFailed, SimBusy, SimNotInserted
from drivers.modem.session import ModemStateChanged
from drivers.modem.transport import Timeouts
from drivers.modem.urcs import CallState, SimStatus
from tests.integration.modem.conftest import next_of

pytestmark = pytest.mark.timeout(60)


async def _rig(make_sim: Any, make_driver: Any, **sim_options: Any) -> Any:
    sim = make_sim(**sim_options)
    info = sim.info()[0]
    driver = await make_driver(info["at_by_id"], timeouts=Timeouts(short=1.0, medium=3.0, long=5.0))
    await driver.wait_registered(5.0)
    return sim, info, driver


async def test_garbage_bytes_are_discarded_and_counted(make_sim: Any, make_driver: Any) -> None:
    _sim, info, driver = await _rig(make_sim, make_driver, faults=("garbage=1.0",))
    await asyncio.sleep(1.2)
    assert (await driver.identify()).imei == info["imei"]
    assert driver.counters.garbage_lines >= 2
    assert driver.state == "ready"


async def test_urc_storm_does_not_disturb_commands(make_sim: Any, make_driver: Any) -> None:
    _sim, _info, driver = await _rig(make_sim, make_driver, faults=("urc_storm=1.0",))
    await asyncio.sleep(0.7)
    assert (await driver.network_info()).registered
    assert driver.counters.urcs >= 30
    assert driver.counters.timeouts == 0


async def test_urcs_inside_every_response(make_sim: Any, make_driver: Any) -> None:
    _sim, info, driver = await _rig(
        make_sim, make_driver, profile="huawei-e1550", faults=("urc_inside=1.0",)
    )
    card = await driver.sim_info()
    assert card.imsi == info["sims"][0]["imsi"]
    assert (await driver.identify()).imei == info["imei"]


async def test_slow_answers_within_timeouts(make_sim: Any, make_driver: Any) -> None:
    sim, info, driver = await _rig(make_sim, make_driver)
    sim.set_faults(0, ["slow=1.0"])
    assert (await driver.identify()).imei == info["imei"]
    assert driver.counters.timeouts == 0


async def test_lost_no_carrier_is_caught_by_the_zombie_watchdog(
    make_sim: Any, make_driver: Any
) -> None:
    sim, _info, driver = await _rig(make_sim, make_driver, faults=("lost_no_carrier=1.0",))
    sim.set_far_end(0, answer_after=0.1, hangup_after=0.3)
    events = driver.subscribe()
    await driver.dial("+15550100")
    await next_of(events, CallEvent, state=CallState.ACTIVE)
    released = await next_of(events, CallEvent, state=CallState.RELEASED)
    assert released.cause == "zombie"
    assert driver.counters.zombie_calls == 1
    assert driver.calls == []


async def test_sim_removed_and_reinserted(make_sim: Any, make_driver: Any) -> None:
    sim, info, driver = await _rig(make_sim, make_driver)
    events = driver.subscribe()
    sim.set_sim_present(0, False)
    removed = await next_of(events, SimStatus, inserted=False)
    assert removed.state == "REMOVED"
    with pytest.raises(SimNotInserted):
        await driver.sim_info(wait=0.5)
    sim.set_sim_present(0, True)
    await next_of(events, SimStatus, state="READY")
    assert (await driver.sim_info()).imsi == info["sims"][0]["imsi"]


async def test_sim_busy_errors_are_retried(make_sim: Any, make_driver: Any) -> None:
    sim, info, driver = await _rig(make_sim, make_driver)
    sim.set_faults(0, ["sim_busy=0.6"])
    assert (await driver.sim_info(wait=5.0)).imsi == info["sims"][0]["imsi"]
    sim.set_faults(0, ["sim_busy=1.0"])
    with pytest.raises(SimBusy):
        await driver.sim_info(wait=0.3)


async def _recovered(driver: Any, events: Any) -> ModemStateChanged:
    await next_of(events, ModemStateChanged, within=10.0, state="recovering")
    state: ModemStateChanged = await next_of(events, ModemStateChanged, within=15.0, state="ready")
    return state


async def test_wedge_is_cured_by_cfun_reset_and_reenumeration(
    make_sim: Any, make_driver: Any
) -> None:
    sim, info, driver = await _rig(make_sim, make_driver)
    events = driver.subscribe()
    sim.wedge(0)
    with pytest.raises(Exception, match="no answer"):
        await driver.identify()
    state = await _recovered(driver, events)
    assert state.reason == "recovered from wedged"
    steps = driver.counters.recovery_steps
    assert {"reopen", "reset", "reenumerate", "reinit"} <= set(steps)
    assert driver.counters.wedges == 1
    assert driver.counters.recoveries_ok == 1
    assert sim.record(0).resets == 1
    assert (await driver.identify()).imei == info["imei"]


async def test_wedge_cleared_by_control_replug(make_sim: Any, make_driver: Any) -> None:
    sim, info, driver = await _rig(make_sim, make_driver)
    events = driver.subscribe()
    sim.wedge(0)
    sim.replug(0)
    await _recovered(driver, events)
    assert (await driver.identify()).imei == info["imei"]


async def test_unplug_and_reenumerate_under_a_new_path_via_by_id(
    make_sim: Any, make_driver: Any
) -> None:
    sim, info, driver = await _rig(make_sim, make_driver)
    events = driver.subscribe()
    sim.unplug(0, replug_after=0.5)
    await _recovered(driver, events)
    assert driver.counters.unplugs >= 1
    assert driver.port == info["at_by_id"]
    assert driver.voice is not None
    assert driver.voice.is_open
    assert (await driver.network_info()).registered


async def test_unplug_with_bare_path_is_found_again_by_imei(
    make_sim: Any, make_driver: Any
) -> None:
    sim = make_sim(count=2)
    info = sim.info()[1]
    driver = await make_driver(info["at"], search=(f"{sim.directory}/by-id/*",))
    events = driver.subscribe()
    sim.unplug(1, replug_after=0.5)
    await asyncio.sleep(0.15)
    squatter, squatter_slave = os.openpty()  # takes the freed pts number, as another device would
    try:
        await _recovered(driver, events)
    finally:
        os.close(squatter)
        os.close(squatter_slave)
    assert driver.port == info["at_by_id"]
    assert (await driver.identify()).imei == info["imei"]


async def test_faults_repeat_with_the_same_seed(make_sim: Any, make_driver: Any) -> None:
    outcomes = []
    for _ in range(2):
        sim = make_sim(seed=42, faults=("sim_busy=0.5",))
        driver = await make_driver(sim.info()[0]["at_by_id"])
        run = []
        for _ in range(12):
            try:
                await driver.command("AT+CIMI")
                run.append("ok")
            except SimBusy:
                run.append("busy")
        outcomes.append((sim.info()[0]["imei"], run))
        await driver.stop()
    assert outcomes[0] == outcomes[1]
    assert "busy" in outcomes[0][1]
    assert "ok" in outcomes[0][1]


async def test_recovery_gives_up_after_its_timeout(make_sim: Any, make_driver: Any) -> None:
    sim = make_sim()
    driver = await make_driver(sim.info()[0]["at_by_id"], recovery_timeout=1.0)
    events = driver.subscribe()
    sim.unplug(0, replug_after=30.0)
    failed = await next_of(events, ModemStateChanged, within=5.0, state="failed")
    assert "recovery failed" in failed.reason
    assert driver.counters.recoveries_failed == 1
    with pytest.raises(RecoveryFailed):
        await driver.wait_ready(1.0)
