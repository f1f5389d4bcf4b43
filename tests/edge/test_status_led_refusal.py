"""The status LED's refusal (unit command `led.refuse`): three double flashes, then the mode again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gpiozero.pins.mock import MockFactory

from edge.pins import view_pin
from edge.status_led import REFUSAL_S, StatusLed
from tests.edge import gpio_fixtures
from tests.edge.gpio_fixtures import ManualClock

pin_factory = gpio_fixtures.pin_factory
clock = gpio_fixtures.clock
PIN = 13


@pytest.fixture
async def led(pin_factory: MockFactory, clock: ManualClock) -> AsyncIterator[StatusLed]:
    made = StatusLed(PIN, pin_factory, clock)
    yield made
    made.close()


@pytest.mark.parametrize("mode", ["steady", "slow", "off"])
async def test_a_refusal_flashes_three_times_then_the_mode_comes_back(
        led: StatusLed, pin_factory: MockFactory, clock: ManualClock, mode: str) -> None:
    pin = view_pin(pin_factory, PIN)
    led.set_mode(mode)
    await clock.advance(0.0)
    pin.clear()
    assert led.refuse() is True
    for _ in range(int(REFUSAL_S / 0.02)):
        await clock.advance(0.02)
    flashes = [a for a, b in zip(pin.history(), pin.history()[1:], strict=False) if a == 1.0 and b == 0.0]
    assert len(flashes) >= 6, pin.history()  # three double flashes
    await clock.advance(0.1)
    assert led.mode == mode and led.refusals == 1
    if mode == "steady":
        assert pin.is_on
    elif mode == "off":
        assert not pin.is_on


async def test_a_mode_change_during_the_refusal_wins(led: StatusLed, clock: ManualClock) -> None:
    led.set_mode("steady")
    led.refuse()
    await clock.advance(0.1)
    led.set_mode("fast")  # an ESTOP came in: the bench must see it at once
    await clock.advance(REFUSAL_S + 1)
    assert led.mode == "fast"


async def test_no_refusal_over_an_estop(led: StatusLed, clock: ManualClock) -> None:
    led.set_mode("fast")
    assert led.refuse() is False
    await clock.advance(REFUSAL_S + 1)
    assert led.mode == "fast" and led.refusals == 0
