"""max_ml_per_hour is a hard cap whatever switches the pump, and the hour's volume survives a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from edge.driver import DriverResources
from edge.drivers.gpio_pump import GpioPumpDriver
from edge.durable import DurableState
from edge.pins import view_pin
from lecis.errors import CommandInvalid, CommandStateForbidden
from tests.edge import gpio_fixtures
from tests.edge.gpio_drivers import host_of, made_drivers, pump_dcd
from tests.edge.gpio_fixtures import FakeHost, ManualClock, command_run
from tests.edge.test_gpio_pump import PIN

pin_factory = gpio_fixtures.pin_factory
clock = gpio_fixtures.clock

MakePump = Callable[..., Awaitable[GpioPumpDriver]]


@pytest.fixture
async def make_pump(pin_factory: MockFactory, clock: ManualClock) -> AsyncIterator[MakePump]:
    async with made_drivers() as add:
        async def make(resources: DriverResources | None = None, **settings: Any) -> GpioPumpDriver:
            return await add(GpioPumpDriver(pump_dcd(**settings), FakeHost(clock),
                                            resources or DriverResources(pin_factory)))

        yield make


async def pump_ml(driver: GpioPumpDriver, clock: ManualClock, ml: float) -> None:
    task = asyncio.create_task(driver.execute("dose", {"ml": ml}, command_run(clock)))
    await clock.advance(ml)  # 1 ml/s
    await asyncio.wait_for(task, 1)
    await clock.advance(2.0)  # past min_off_s: the next command has a fresh stretch


def events(driver: GpioPumpDriver) -> list[tuple[str, str, str]]:
    return host_of(driver).events


async def test_on_is_cut_when_the_rest_of_the_hour_is_pumped(
    make_pump: MakePump, pin_factory: MockFactory, clock: ManualClock
) -> None:
    # The reported defect: with 89.8 of 100 ml used, `on` ran to max_on_s (~105 ml in the hour).
    driver = await make_pump(max_ml_per_hour=100.0, max_on_s=120.0)
    for _ in range(2):
        await pump_ml(driver, clock, 44.9)
    assert driver.ml_last_hour() == pytest.approx(89.8)
    pin = view_pin(pin_factory, PIN)
    driver.check("on", {})
    await driver.execute("on", {}, command_run(clock))
    await clock.advance(10.19)
    assert pin.is_on
    await clock.advance(0.02)
    assert not pin.is_on, "off once the hour's 100 ml are pumped"
    assert driver.ml_last_hour() == pytest.approx(100.0)
    assert events(driver)[-1][:2] == ("warning", "max_ml_per_hour")
    with pytest.raises(CommandStateForbidden, match="already pumped 100 ml in the last hour"):
        driver.check("on", {})


async def test_run_is_cut_with_limited_by_max_ml_per_hour(
    make_pump: MakePump, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_pump(max_ml_per_hour=10.0, max_on_s=60.0)
    await pump_ml(driver, clock, 7.0)
    driver.check("run", {"seconds": 30.0})
    task = asyncio.create_task(driver.execute("run", {"seconds": 30.0}, command_run(clock)))
    await clock.advance(30.0)
    assert await asyncio.wait_for(task, 1) == {"ran_s": 3.0, "limited_by": "max_ml_per_hour"}
    assert driver.ml_last_hour() == pytest.approx(10.0)
    assert not view_pin(pin_factory, PIN).is_on


async def test_the_cut_follows_the_rolling_hour(
    make_pump: MakePump, pin_factory: MockFactory, clock: ManualClock
) -> None:
    driver = await make_pump(max_ml_per_hour=10.0, max_on_s=3600.0)
    await pump_ml(driver, clock, 5.0)  # counted at t = 5, when it ended: it leaves the hour at t = 3605
    await clock.advance(3603.0 - 7.0)
    await driver.execute("on", {}, command_run(clock))  # 5 ml left now; 10 ml from t = 3605 on
    pin = view_pin(pin_factory, PIN)
    await clock.advance(9.99)
    assert pin.is_on, "the old dose left the hour meanwhile: the pump may go on"
    await clock.advance(0.02)
    assert not pin.is_on
    assert driver.ml_last_hour() == pytest.approx(10.0, abs=0.01)


async def test_a_dose_that_does_not_fit_is_rejected_with_the_figures(make_pump: MakePump,
                                                                     clock: ManualClock) -> None:
    driver = await make_pump(max_ml_per_hour=10.0)
    await pump_ml(driver, clock, 9.0)
    with pytest.raises(CommandInvalid) as refused:
        driver.check("dose", {"ml": 7.0})
    assert refused.value.message == "dose of 7 ml would make 16 ml in the last hour; max_ml_per_hour is 10"


async def test_a_dose_longer_than_what_is_left_of_the_stretch_is_rejected(
    make_pump: MakePump, clock: ManualClock
) -> None:
    driver = await make_pump(max_on_s=10.0)
    task = asyncio.create_task(driver.execute("dose", {"ml": 8.0}, command_run(clock)))
    await clock.advance(8.0)
    await asyncio.wait_for(task, 1)
    with pytest.raises(CommandStateForbidden) as refused:
        driver.check("dose", {"ml": 5.0})
    assert "only 2 s of max_on_s=10 left in this on-stretch; wait 1 s" in refused.value.message
    driver.check("dose", {"ml": 2.0})


async def test_the_hour_survives_a_restart_of_the_process(
    pin_factory: MockFactory, clock: ManualClock, tmp_path: Path
) -> None:
    # The reported defect: after 9 of 10 ml and a restart, a 7 ml dose went through.
    store = DurableState(tmp_path / "durable.sqlite3", clock)
    store.open()
    first = GpioPumpDriver(pump_dcd(max_ml_per_hour=10.0), FakeHost(clock),
                           DriverResources(pin_factory, durable=store))
    await first.initialize()
    await pump_ml(first, clock, 9.0)
    await first.close()
    store.close()

    restarted = ManualClock(start=clock.now())  # a new process: its monotonic clock starts again at 0
    again = DurableState(tmp_path / "durable.sqlite3", restarted)
    again.open()
    try:
        second = GpioPumpDriver(pump_dcd(max_ml_per_hour=10.0), FakeHost(restarted),
                                DriverResources(pin_factory, durable=again))
        await second.initialize()
        assert second.ml_last_hour() == pytest.approx(9.0)
        with pytest.raises(CommandInvalid, match="would make 16 ml"):
            second.check("dose", {"ml": 7.0})
        await restarted.advance(3600.0)
        second.check("dose", {"ml": 7.0})
        await second.close()
    finally:
        again.close()
