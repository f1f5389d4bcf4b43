"""gpio.pump on mock PWM pins: dose timing and speed, calibration and hourly volume checks, max_on_s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.command_run import RunHandle
from edge.driver import CommandAborted, DriverResources
from edge.drivers.gpio_pump import GpioPumpDriver
from edge.pins import make_pin_factory, view_pin
from lecis.clock import SystemClock
from lecis.errors import CommandInvalid, CommandStateForbidden
from tests.edge import gpio_fixtures
from tests.edge.gpio_drivers import host_of, made_drivers, pump_dcd
from tests.edge.gpio_fixtures import FakeHost, ManualClock, command_run

pin_factory = gpio_fixtures.pin_factory
clock = gpio_fixtures.clock

PIN = 17
MakePump = Callable[..., Awaitable[GpioPumpDriver]]


@pytest.fixture
async def make_pump(pin_factory: MockFactory, clock: ManualClock) -> AsyncIterator[MakePump]:
    resources = DriverResources(pin_factory)
    async with made_drivers() as add:
        async def make(pump_clock: Any = None, **settings: Any) -> GpioPumpDriver:
            return await add(GpioPumpDriver(pump_dcd(**settings), FakeHost(pump_clock or clock), resources))

        yield make


async def dose(driver: GpioPumpDriver, clock: ManualClock, ml: float) -> dict[str, Any]:
    driver.check("dose", {"ml": ml})
    task = asyncio.create_task(driver.execute("dose", {"ml": ml}, command_run(clock)))
    await clock.advance(ml / 1.0)
    return await asyncio.wait_for(task, 1)


async def test_dose_duration_follows_calibration_and_pwm_speed(
    make_pump: MakePump, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_pump(ml_per_s=2.0, pwm=True, pwm_frequency_hz=250.0)
    pin = view_pin(pin_factory, PIN)
    assert pin_factory.pin(PIN).frequency == 250.0
    args = {"ml": 3.0, "speed": 0.5}
    driver.check("dose", args)
    task = asyncio.create_task(driver.execute("dose", args, command_run(clock)))
    await clock.advance(0.1)
    assert pin.level == 0.5  # half speed is a 50 % duty cycle on the pin
    assert driver.outputs()["speed"] == 0.5 and driver.outputs()["on"] is True
    await clock.advance(2.89)  # 3 ml at 2 ml/s x 0.5 takes 3 s
    assert pin.level == 0.5
    await clock.advance(0.01)
    assert pin.level == 0.0
    assert await asyncio.wait_for(task, 1) == {"ml": 3.0, "ran_s": 3.0}
    assert driver.outputs() == {"on": False, "speed": 0.0}


async def test_dose_without_calibration_is_refused_before_the_pin_moves(
    make_pump: MakePump, pin_factory: MockFactory
) -> None:
    driver = await make_pump(ml_per_s=None)
    pin = view_pin(pin_factory, PIN)
    pin.clear()
    with pytest.raises(CommandStateForbidden) as refused:
        driver.check("dose", {"ml": 5.0})
    assert refused.value.message == (
        "base_pump has no flow calibration (ml_per_s); dose in ml is refused until it is calibrated"
    )
    assert pin.history() == [0.0]
    driver.check("run", {"seconds": 5.0})  # time-based running needs no calibration


async def test_dose_over_max_ml_per_hour_is_refused_until_the_hour_has_passed(
    make_pump: MakePump, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_pump(ml_per_s=1.0, max_ml_per_hour=50.0)
    assert await dose(driver, clock, 35.0) == {"ml": 35.0, "ran_s": 35.0}
    await clock.advance(1.0)  # min_off_s: the next command starts a fresh on-stretch
    pin = view_pin(pin_factory, PIN)
    pin.clear()
    with pytest.raises(CommandInvalid) as refused:
        driver.check("dose", {"ml": 30.0})
    assert refused.value.message == "dose of 30 ml would make 65 ml in the last hour; max_ml_per_hour is 50"
    assert refused.value.param == "ml"
    driver.check("run", {"seconds": 20.0})  # accepted: a run is cut once the hour's 15 ml are pumped
    assert pin.history() == [0.0]
    driver.check("dose", {"ml": 15.0})  # exactly up to the limit is fine
    await clock.advance(3600.0)
    driver.check("dose", {"ml": 30.0})


async def test_volume_counts_what_an_aborted_dose_delivered(
    make_pump: MakePump, clock: ManualClock
) -> None:
    driver = await make_pump(ml_per_s=1.0, max_ml_per_hour=50.0)
    run = command_run(clock)
    task = asyncio.create_task(driver.execute("dose", {"ml": 40.0}, run))
    await clock.advance(20.0)
    run.abort("ESTOP")
    driver.safe()
    with pytest.raises(CommandAborted):
        await asyncio.wait_for(task, 1)
    assert driver.ml_last_hour() == pytest.approx(20.0)
    driver.check("dose", {"ml": 30.0})
    with pytest.raises(CommandInvalid, match="would make 51 ml"):
        driver.check("dose", {"ml": 31.0})


async def test_volume_survives_a_reinitialized_driver(make_pump: MakePump, clock: ManualClock) -> None:
    first = await make_pump(ml_per_s=1.0, max_ml_per_hour=50.0)
    await dose(first, clock, 45.0)
    await first.close()
    second = await make_pump(ml_per_s=1.0, max_ml_per_hour=50.0)  # RESET builds a new driver
    with pytest.raises(CommandInvalid, match="would make 55 ml"):
        second.check("dose", {"ml": 10.0})


async def test_speed_is_refused_without_pwm(make_pump: MakePump, pin_factory: MockFactory) -> None:
    driver = await make_pump(pwm=False)
    pin = view_pin(pin_factory, PIN)
    pin.clear()
    for name, args in (("on", {"speed": 0.5}), ("run", {"seconds": 1.0, "speed": 1.0})):
        with pytest.raises(CommandInvalid) as refused:
            driver.check(name, args)
        assert refused.value.param == "speed"
    assert pin.history() == [0.0]


async def test_dose_longer_than_max_on_is_refused(make_pump: MakePump) -> None:
    driver = await make_pump(ml_per_s=1.0, max_on_s=5.0)
    with pytest.raises(CommandInvalid, match="longer than max_on_s=5") as refused:
        driver.check("dose", {"ml": 6.0})
    assert refused.value.param == "ml"


async def test_run_beyond_max_on_ends_at_max_on(
    make_pump: MakePump, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_pump(max_on_s=5.0)
    task = asyncio.create_task(driver.execute("run", {"seconds": 60.0}, command_run(clock)))
    await clock.advance(5.0)
    assert await asyncio.wait_for(task, 1) == {"ran_s": 5.0, "limited_by": "max_on_s"}
    assert not view_pin(pin_factory, PIN).is_on
    assert host_of(driver).events == [("warning", "max_on", "base_pump turned off after max_on_s=5 s")]
    assert driver.ml_last_hour() == pytest.approx(5.0)


async def test_run_beyond_max_on_in_real_time_with_the_module_run_handle(
    make_pump: MakePump, pin_factory: MockFactory
) -> None:
    real = SystemClock()
    driver = await make_pump(pump_clock=real, max_on_s=0.5)
    pin = view_pin(pin_factory, PIN)
    pin.clear()
    result = await asyncio.wait_for(driver.execute("run", {"seconds": 60.0}, RunHandle(real, "c1")), 5)
    assert result["limited_by"] == "max_on_s"
    assert result["ran_s"] == pytest.approx(0.5, abs=0.1)
    (_, on), (on_for, off) = pin.timeline()[1:]
    assert (on, off) == (1.0, 0.0)
    assert on_for == pytest.approx(0.5, abs=0.1)  # the pin itself was on for max_on_s


async def test_pause_and_resume_restore_the_speed(
    make_pump: MakePump, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_pump(pwm=True, ml_per_s=1.0)
    pin = view_pin(pin_factory, PIN)
    run = command_run(clock)
    task = asyncio.create_task(driver.execute("run", {"seconds": 4.0, "speed": 0.25}, run))
    await clock.advance(1.0)
    run.pause()
    driver.pause()
    assert pin.level == 0.0 and driver.outputs() == {"on": False, "speed": 0.0}
    await clock.advance(30.0)
    driver.resume()
    run.resume()
    assert pin.level == 0.25
    await clock.advance(3.0)
    assert await asyncio.wait_for(task, 1) == {"ran_s": 4.0}
    assert driver.ml_last_hour() == pytest.approx(1.0)  # 4 s x 1 ml/s x 0.25


async def test_safe_stops_a_running_pump_at_once(
    make_pump: MakePump, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_pump(pwm=True)
    await driver.execute("on", {"speed": 0.8}, command_run(clock))
    assert view_pin(pin_factory, PIN).level == pytest.approx(0.8)
    assert driver.outputs()["on"] is True
    driver.safe()
    assert view_pin(pin_factory, PIN).level == 0.0
    assert driver.outputs() == {"on": False, "speed": 0.0}


async def test_active_low_pump_is_created_off(make_pump: MakePump, pin_factory: MockFactory) -> None:
    await make_pump(active_high=False, pwm=True)
    raw = pin_factory.pin(PIN)
    assert raw.state == 1.0  # high is off for an active-low input
    assert not view_pin(pin_factory, PIN, active_high=False).is_on


async def test_gpiozero_environment_chooses_the_factory(
    monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setenv("GPIOZERO_MOCK_PIN_CLASS", "mockpwmpin")
    saved = Device.pin_factory
    Device.pin_factory = None
    driver = GpioPumpDriver(pump_dcd(pwm=True), FakeHost(clock), DriverResources(make_pin_factory(None)))
    try:
        await driver.initialize()
        await driver.execute("on", {"speed": 0.5}, command_run(clock))
        chosen = Device.pin_factory
        assert isinstance(chosen, MockFactory) and chosen.pin_class is MockPWMPin
        assert chosen.pin(PIN).state == 0.5
        driver.safe()
        await driver.close()
    finally:
        if Device.pin_factory is not None:
            Device.pin_factory.close()
            Device.pin_factory.reset()
        Device.pin_factory = saved
