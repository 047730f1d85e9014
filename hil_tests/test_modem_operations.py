"""The modem operation suite against a real modem named in the hardware description."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from drivers.modem import CallEvent, CallState, ModemConfig, ModemDriver

pytestmark = pytest.mark.timeout(300)


def _expect(hardware: dict[str, Any], key: str) -> Any:
    value = hardware.get(key)
    if value is None:
        pytest.skip(f"{key} not given for this modem in the hardware description")
    return value


@pytest.fixture
async def driver(modem_hardware: dict[str, Any]) -> AsyncIterator[ModemDriver]:
    config = ModemConfig(
        port=modem_hardware["at_port"],
        voice_port=modem_hardware.get("voice_port"),
        profile=modem_hardware.get("profile"),
        pin=modem_hardware.get("sim_pin"),
    )
    modem = ModemDriver(config)
    await modem.start()
    yield modem
    await modem.stop()


async def test_identity(driver: ModemDriver, modem_hardware: dict[str, Any]) -> None:
    identity = await driver.identify()
    assert identity.imei.isdigit()
    assert len(identity.imei) == 15
    if "imei" in modem_hardware:
        assert identity.imei == str(modem_hardware["imei"])
    if "manufacturer" in modem_hardware:
        assert modem_hardware["manufacturer"].lower() in identity.manufacturer.lower()


async def test_sim_and_network(driver: ModemDriver) -> None:
    card = await driver.sim_info(wait=30.0)
    assert card.pin_state == "READY"
    assert card.imsi.isdigit()
    network = await driver.wait_registered(120.0)
    assert network.signal_dbm is None or -113 <= network.signal_dbm <= -51


async def test_outgoing_call(driver: ModemDriver, modem_hardware: dict[str, Any]) -> None:
    number = _expect(modem_hardware, "test_number")
    await driver.wait_registered(120.0)
    events = driver.subscribe()
    await driver.dial(number)
    await events.wait_for(lambda e: isinstance(e, CallEvent) and e.state is CallState.ACTIVE, 60.0)
    if driver.voice is not None:
        await asyncio.sleep(1.0)
        assert driver.voice.counters.frames_in > 0, "PCM arrives while the call is up"
    await driver.send_dtmf("1")
    await driver.hangup()
    released = await events.wait_for(
        lambda e: isinstance(e, CallEvent) and e.state is CallState.RELEASED, 30.0
    )
    assert isinstance(released, CallEvent)


async def test_sms_send(driver: ModemDriver, modem_hardware: dict[str, Any]) -> None:
    number = _expect(modem_hardware, "sms_number")
    await driver.wait_registered(120.0)
    refs = await driver.send_sms(number, "callmesh HIL test")
    assert refs


async def test_ussd(driver: ModemDriver, modem_hardware: dict[str, Any]) -> None:
    code = _expect(modem_hardware, "ussd")
    await driver.wait_registered(120.0)
    assert await driver.ussd(code, within=60.0)


async def test_sim_switch(driver: ModemDriver, modem_hardware: dict[str, Any]) -> None:
    _expect(modem_hardware, "sim_slots")
    first = await driver.sim_info(wait=30.0)
    second = await driver.select_sim(1, within=180.0)
    assert second.imsi != first.imsi
    back = await driver.select_sim(0, within=180.0)
    assert back.imsi == first.imsi
