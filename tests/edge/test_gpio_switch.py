"""gpio.switch on mock pins: polarity, pulse timing, the max_on_s cut, pause, safe; pin factory choice."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.driver import CommandAborted, DriverResources
from edge.drivers.gpio_switch import GpioSwitchDriver
from edge.pins import make_pin_factory, view_pin
from lecis.clock import iso_ts
from lecis.errors import ConfigError, DeviceError
from tests.edge import gpio_fixtures
from tests.edge.gpio_drivers import host_of, made_drivers, switch_dcd
from tests.edge.gpio_fixtures import FakeHost, ManualClock, command_run

pin_factory = gpio_fixtures.pin_factory
clock = gpio_fixtures.clock

PIN = 27


MakeSwitch = Callable[..., Awaitable[GpioSwitchDriver]]


@pytest.fixture
async def make_switch(pin_factory: MockFactory, clock: ManualClock) -> AsyncIterator[MakeSwitch]:
    async with made_drivers() as add:
        async def make(**settings: Any) -> GpioSwitchDriver:
            return await add(GpioSwitchDriver(switch_dcd(pin=PIN, **settings), FakeHost(clock),
                                              DriverResources(pin_factory)))

        yield make


@pytest.mark.parametrize("active_high", [True, False])
async def test_on_and_off_drive_the_pin_with_its_polarity(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock, active_high: bool
) -> None:
    driver = await make_switch(active_high=active_high)
    raw = pin_factory.pin(PIN)
    assert raw.function == "output"
    assert raw.state == (not active_high)  # created off
    assert driver.outputs() == {"on": False}

    assert await driver.execute("on", {}, command_run(clock)) == {"on": True}
    assert raw.state == active_high
    assert driver.outputs() == {"on": True, "on_since": iso_ts(clock.now())}

    assert await driver.execute("off", {}, command_run(clock)) == {"on": False}
    assert raw.state == (not active_high)
    assert view_pin(pin_factory, PIN, active_high).history()[-3:] == [0.0, 1.0, 0.0]
    assert host_of(driver).changes == 2


async def test_pulse_ends_on_time(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_switch()
    pin = view_pin(pin_factory, PIN)
    pin.clear()
    pulse = asyncio.create_task(driver.execute("pulse", {"seconds": 2.0}, command_run(clock)))
    await clock.advance(1.9)
    assert pin.is_on and driver.outputs()["on"] is True
    await clock.advance(0.1)
    assert not pin.is_on
    assert await asyncio.wait_for(pulse, 1) == {"ran_s": 2.0}
    assert pin.history() == [0.0, 1.0, 0.0]
    assert host_of(driver).events == []


async def test_pulse_beyond_max_on_ends_at_max_on_and_says_so(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_switch(max_on_s=5.0)
    pin = view_pin(pin_factory, PIN)
    pulse = asyncio.create_task(driver.execute("pulse", {"seconds": 60.0}, command_run(clock)))
    await clock.advance(4.99)
    assert pin.is_on
    await clock.advance(0.01)
    assert not pin.is_on
    assert await asyncio.wait_for(pulse, 1) == {"ran_s": 5.0, "limited_by": "max_on_s"}
    assert host_of(driver).events == [("warning", "max_on", "aeration turned off after max_on_s=5 s")]


async def test_plain_on_is_cut_at_max_on_with_an_event(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_switch(max_on_s=5.0)
    pin = view_pin(pin_factory, PIN)
    host = host_of(driver)
    await driver.execute("on", {}, command_run(clock))
    await clock.advance(3.0)
    await driver.execute("on", {}, command_run(clock))  # asking again does not restart the limit
    await clock.advance(1.99)
    assert pin.is_on
    changes_before = host.changes
    await clock.advance(0.01)
    assert not pin.is_on
    assert driver.outputs() == {"on": False}
    assert host.events == [("warning", "max_on", "aeration turned off after max_on_s=5 s")]
    assert host.changes == changes_before + 1  # the retained state is published again


async def test_pause_turns_off_and_resume_on_without_counting_paused_time(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_switch(max_on_s=12.0)  # on-time before and after the pause adds up: 10 s
    pin = view_pin(pin_factory, PIN)
    pin.clear()
    run = command_run(clock)
    pulse = asyncio.create_task(driver.execute("pulse", {"seconds": 10.0}, run))
    await clock.advance(3.0)
    run.pause()  # the module pauses the run, then the driver
    driver.pause()
    assert not pin.is_on
    await clock.advance(100.0)  # paused: neither the pulse nor the watchdog runs
    assert not pin.is_on and not pulse.done()
    assert host_of(driver).events == []
    driver.resume()
    run.resume()
    assert pin.is_on
    await clock.advance(6.99)
    assert pin.is_on
    await clock.advance(0.01)
    assert await asyncio.wait_for(pulse, 1) == {"ran_s": 10.0}
    assert pin.history() == [0.0, 1.0, 0.0, 1.0, 0.0]


async def test_abort_propagates_with_the_output_already_off(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_switch()
    pin = view_pin(pin_factory, PIN)
    run = command_run(clock)
    pulse = asyncio.create_task(driver.execute("pulse", {"seconds": 10.0}, run))
    await clock.advance(1.0)
    run.abort("ABORT command")
    with pytest.raises(CommandAborted):
        await asyncio.wait_for(pulse, 1)
    assert not pin.is_on
    assert driver.outputs() == {"on": False}


async def test_safe_turns_the_output_off_at_once(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_switch(max_on_s=5.0)
    pin = view_pin(pin_factory, PIN)
    await driver.execute("on", {}, command_run(clock))
    driver.safe()  # synchronous: no await between the call and the pin
    assert not pin.is_on
    await clock.advance(10.0)
    assert host_of(driver).events == []  # the watchdog went with it


async def test_close_releases_the_pin_for_the_next_driver(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock
) -> None:
    first = await make_switch()
    with pytest.raises(DeviceError) as in_use:
        await make_switch()
    assert in_use.value.code == "gpio_unavailable" and "GPIO27" in in_use.value.message
    await first.close()
    second = await make_switch()
    assert await second.execute("on", {}, command_run(clock)) == {"on": True}


@pytest.mark.parametrize(
    ("settings", "needle"),
    [({"max_on_s": None}, "max_on_s: expected a number above 0, got nothing"),
     ({"max_on_s": 0}, "max_on_s: expected a number above 0, got 0"),
     ({"pin": True}, "pin: pin true does not exist on the Raspberry Pi header")],
)
async def test_bad_settings_are_named(
    pin_factory: MockFactory, clock: ManualClock, settings: dict[str, Any], needle: str
) -> None:
    driver = GpioSwitchDriver(switch_dcd(**settings), FakeHost(clock), DriverResources(pin_factory))
    with pytest.raises(DeviceError) as failure:
        await driver.initialize()
    assert failure.value.code == "bad_settings" and needle in failure.value.message


def test_make_pin_factory() -> None:
    assert make_pin_factory(None) is None
    factory = make_pin_factory("mock")
    try:
        assert isinstance(factory, MockFactory) and factory.pin_class is MockPWMPin
    finally:
        assert factory is not None
        factory.close()
    with pytest.raises(ConfigError, match="unknown pin factory 'gpio'"):
        make_pin_factory("gpio")


def test_importing_chooses_no_pin_factory() -> None:
    code = (
        "import edge.pins, edge.buttons, edge.status_led, edge.drivers.gpio_switch, edge.drivers.gpio_pump\n"
        "from gpiozero import Device\n"
        "assert Device.pin_factory is None, Device.pin_factory\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
