"""max_on_s bounds an output's on-stretch, whatever commands make it: pauses, back-to-back off/on, repeats.

Pins are read on the mock factory; time is the test's ManualClock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from edge.driver import CommandAborted, DriverResources
from edge.drivers.gpio_output import DEFAULT_MIN_OFF_S, GpioOutput, OutputLimitReached
from edge.drivers.gpio_switch import GpioSwitchDriver, min_off, switch_settings
from edge.durable import DurableState
from edge.pins import view_pin
from lecis.dcd import Dcd
from lecis.errors import CommandStateForbidden, DeviceError
from tests.edge import gpio_drivers, gpio_fixtures
from tests.edge.gpio_drivers import host_of, made_drivers
from tests.edge.gpio_fixtures import FakeHost, ManualClock, command_run

pin_factory = gpio_fixtures.pin_factory
clock = gpio_fixtures.clock

PIN = 22


def switch_dcd(**settings: Any) -> Dcd:
    return gpio_drivers.switch_dcd("heater", PIN, 2.0, **settings)


MakeSwitch = Callable[..., Awaitable[GpioSwitchDriver]]


@pytest.fixture
async def make_switch(pin_factory: MockFactory, clock: ManualClock) -> AsyncIterator[MakeSwitch]:
    async with made_drivers() as add:
        async def make(**settings: Any) -> GpioSwitchDriver:
            return await add(GpioSwitchDriver(switch_dcd(**settings), FakeHost(clock),
                                              DriverResources(pin_factory)))

        yield make


async def on_seconds(pin: Any, clock: ManualClock, total: float, step: float = 0.01) -> float:
    """Advance `total` seconds in steps, returning how long the pin was seen on."""
    seen = 0.0
    for _ in range(round(total / step)):
        was_on = pin.is_on
        await clock.advance(step)
        seen += step if was_on else 0.0
    return seen


async def test_pause_and_resume_do_not_restart_the_max_on_clock(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock
) -> None:
    # The reported defect: max_on_s 2, a pulse of 8 s paused and resumed every 1.5 s ran 8 s.
    driver = await make_switch()
    pin = view_pin(pin_factory, PIN)
    run = command_run(clock)
    pulse = asyncio.create_task(driver.execute("pulse", {"seconds": 8.0}, run))
    seen = 0.0
    for _ in range(6):
        seen += await on_seconds(pin, clock, 1.5)
        if pulse.done():
            break
        run.pause()
        driver.pause()
        await clock.advance(5.0)  # paused longer than min_off_s: the command still holds its stretch
        driver.resume()
        run.resume()
    result = await asyncio.wait_for(pulse, 1)
    assert seen == pytest.approx(2.0, abs=0.02)
    assert result["limited_by"] == "max_on_s" and result["ran_s"] == pytest.approx(2.0, abs=0.02)
    assert not pin.is_on


async def test_back_to_back_off_on_counts_as_one_stretch(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_switch()
    pin = view_pin(pin_factory, PIN)
    await driver.execute("on", {}, command_run(clock))
    await clock.advance(1.5)
    await driver.execute("off", {}, command_run(clock))
    driver.check("on", {})  # half a second is left of this stretch
    await driver.execute("on", {}, command_run(clock))
    await clock.advance(0.49)
    assert pin.is_on
    await clock.advance(0.02)
    assert not pin.is_on, "the watchdog cut the stretch at 2 s of on-time"
    with pytest.raises(CommandStateForbidden) as refused:
        driver.check("on", {})
    assert refused.value.message == (
        "heater has been on for max_on_s=2 s in this stretch; it must stay off 0.99 s more "
        "(min_off_s=1) before it can be switched on again")
    with pytest.raises(CommandStateForbidden):
        driver.check("pulse", {"seconds": 1.0})
    await clock.advance(DEFAULT_MIN_OFF_S)
    driver.check("on", {})
    await driver.execute("on", {}, command_run(clock))
    assert await on_seconds(pin, clock, 3.0) == pytest.approx(2.0, abs=0.02), "a fresh stretch: 2 s again"


async def test_repeated_pulses_share_one_stretch(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_switch()
    first = asyncio.create_task(driver.execute("pulse", {"seconds": 1.5}, command_run(clock)))
    await clock.advance(1.5)
    assert await asyncio.wait_for(first, 1) == {"ran_s": 1.5}
    second = asyncio.create_task(driver.execute("pulse", {"seconds": 1.5}, command_run(clock)))
    await clock.advance(1.5)
    assert await asyncio.wait_for(second, 1) == {"ran_s": 0.5, "limited_by": "max_on_s"}
    assert host_events(driver) == [("warning", "max_on", "heater turned off after max_on_s=2 s")]


async def test_min_off_s_zero_lets_any_gap_end_the_stretch(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_switch(min_off_s=0)
    first = asyncio.create_task(driver.execute("pulse", {"seconds": 1.5}, command_run(clock)))
    await clock.advance(1.5)
    await asyncio.wait_for(first, 1)
    second = asyncio.create_task(driver.execute("pulse", {"seconds": 1.5}, command_run(clock)))
    await clock.advance(1.5)
    assert await asyncio.wait_for(second, 1) == {"ran_s": 1.5}


async def test_a_gap_of_min_off_s_starts_a_fresh_stretch(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_switch(min_off_s=5)
    await driver.execute("on", {}, command_run(clock))
    await clock.advance(1.9)
    await driver.execute("off", {}, command_run(clock))
    await clock.advance(4.9)
    assert driver.output is not None and driver.output.budget() == pytest.approx(0.1)
    await clock.advance(0.1)
    assert driver.output.budget() == 2.0


async def test_an_aborted_pause_gives_the_stretch_back_to_the_gap_rule(
    make_switch: MakeSwitch, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_switch()
    run = command_run(clock)
    pulse = asyncio.create_task(driver.execute("pulse", {"seconds": 8.0}, run))
    await clock.advance(1.9)
    run.pause()
    driver.pause()
    await clock.advance(30.0)
    assert driver.output is not None and driver.output.budget() == pytest.approx(0.1), "held by the pause"
    run.abort("ABORT command")
    driver.safe()
    with pytest.raises(CommandAborted):
        await asyncio.wait_for(pulse, 1)
    assert driver.output.budget() == 2.0, "off for 30 s once nothing holds it: a fresh stretch"


async def test_the_output_itself_refuses_to_switch_on_without_budget(
    pin_factory: MockFactory, clock: ManualClock
) -> None:
    output = GpioOutput("valve", PIN, clock=clock, max_on_s=1.0, min_off_s=10.0, pin_factory=pin_factory)
    try:
        output.on()
        await clock.advance(1.0)
        assert not output.is_on
        with pytest.raises(OutputLimitReached) as refused:
            output.on()
        assert refused.value.reason == "max_on_s"
        assert not view_pin(pin_factory, PIN).is_on
    finally:
        output.close()


def test_min_off_s_defaults_and_bounds() -> None:
    assert min_off(switch_settings(switch_dcd())) == DEFAULT_MIN_OFF_S
    assert min_off(switch_settings(switch_dcd(min_off_s=None))) == DEFAULT_MIN_OFF_S
    assert min_off(switch_settings(switch_dcd(min_off_s=0))) == 0.0
    with pytest.raises(DeviceError, match="min_off_s: expected a number at least 0 or null, got -1"):
        switch_settings(switch_dcd(min_off_s=-1))


def host_events(driver: GpioSwitchDriver) -> list[tuple[str, str, str]]:
    return host_of(driver).events


async def test_a_restart_inside_a_stretch_does_not_give_a_fresh_max_on(
    pin_factory: MockFactory, clock: ManualClock, tmp_path: Path
) -> None:
    store = DurableState(tmp_path / "durable.sqlite3", clock)
    store.open()
    first = GpioSwitchDriver(switch_dcd(min_off_s=5), FakeHost(clock),
                             DriverResources(pin_factory, durable=store))
    await first.initialize()
    await first.execute("on", {}, command_run(clock))
    await clock.advance(1.5)
    await first.close()  # the process stops: the output goes off
    store.close()

    restarted = ManualClock(start=clock.now() + timedelta(seconds=2))  # a new process, 2 s later
    again = DurableState(tmp_path / "durable.sqlite3", restarted)
    again.open()
    second = GpioSwitchDriver(switch_dcd(min_off_s=5), FakeHost(restarted),
                              DriverResources(pin_factory, durable=again))
    try:
        await second.initialize()
        assert second.output is not None and second.output.budget() == pytest.approx(0.5)
        await restarted.advance(3.0)  # off for 5 s in all: a fresh stretch
        assert second.output.budget() == 2.0
    finally:
        await second.close()
        again.close()


async def test_a_process_that_died_with_the_output_on_counts_it_on_until_the_restart(
    pin_factory: MockFactory, clock: ManualClock, tmp_path: Path
) -> None:
    store = DurableState(tmp_path / "durable.sqlite3", clock)
    store.open()
    store.put_stretch("heater", 0.5, True)  # turned on after 0.5 s of its stretch; never turned off
    store.close()
    restarted = ManualClock(start=clock.now() + timedelta(seconds=1))
    again = DurableState(tmp_path / "durable.sqlite3", restarted)
    again.open()
    driver = GpioSwitchDriver(switch_dcd(), FakeHost(restarted), DriverResources(pin_factory, durable=again))
    try:
        await driver.initialize()
        assert driver.output is not None and driver.output.budget() == pytest.approx(0.5)
        assert driver.output.rest_needed() == 1.0, "off since the restart, not since it died"
    finally:
        await driver.close()
        again.close()
