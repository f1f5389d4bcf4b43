"""Status LED on a mock pin: blink rates counted from the pin's recorded changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from gpiozero.pins.mock import MockFactory

from edge.pins import view_pin
from edge.status_led import StatusLed
from lecis.clock import Clock, SystemClock
from tests.edge import gpio_fixtures
from tests.edge.gpio_fixtures import ManualClock

pin_factory = gpio_fixtures.pin_factory
clock = gpio_fixtures.clock

PIN = 13


@pytest.fixture
async def make_led(pin_factory: MockFactory, clock: ManualClock) -> AsyncIterator[Callable[..., StatusLed]]:
    made: list[StatusLed] = []

    def make(led_clock: Clock | None = None) -> StatusLed:
        led = StatusLed(PIN, pin_factory, led_clock or clock)
        made.append(led)
        return led

    yield make
    for led in made:
        led.close()


@pytest.mark.parametrize(("mode", "window_s", "toggles"), [("slow", 10.0, 10), ("fast", 1.0, 8)])
async def test_blinking_modes_toggle_at_their_rate(
    make_led: Callable[..., StatusLed], pin_factory: MockFactory, clock: ManualClock,
    mode: str, window_s: float, toggles: int,
) -> None:
    led = make_led()
    pin = view_pin(pin_factory, PIN)
    led.set_mode(mode)
    await clock.advance(0.0)
    assert pin.is_on  # a blink starts lit
    pin.clear()
    for _ in range(int(window_s / 0.0625)):  # the unit may re-assert its mode at any time
        await clock.advance(0.0625)
        led.set_mode(mode)
    assert pin.changes() == toggles
    assert pin.history()[:3] == [1.0, 0.0, 1.0]


async def test_steady_and_off_do_not_blink(
    make_led: Callable[..., StatusLed], pin_factory: MockFactory, clock: ManualClock
) -> None:
    led = make_led()
    pin = view_pin(pin_factory, PIN)
    led.set_mode("fast")
    await clock.advance(0.3)
    led.set_mode("steady")
    assert pin.is_on
    pin.clear()
    await clock.advance(10.0)
    assert pin.changes() == 0
    led.set_mode("off")
    await clock.advance(10.0)
    assert pin.history() == [1.0, 0.0]


async def test_close_leaves_the_led_off(
    make_led: Callable[..., StatusLed], pin_factory: MockFactory, clock: ManualClock
) -> None:
    led = make_led()
    pin = view_pin(pin_factory, PIN)
    led.set_mode("slow")
    await clock.advance(0.5)
    assert pin.is_on
    led.close()
    assert pin.level == 0.0
    pin.clear()
    await clock.advance(5.0)
    led.set_mode("steady")  # the unit may still report a change while it shuts down
    assert pin.history() == [0.0]


async def test_fast_blink_on_the_real_clock(
    make_led: Callable[..., StatusLed], pin_factory: MockFactory
) -> None:
    led = make_led(SystemClock())
    pin = view_pin(pin_factory, PIN)
    led.set_mode("fast")
    await asyncio.sleep(0.01)
    pin.clear()
    await asyncio.sleep(1.0)
    assert 7 <= pin.changes() <= 9  # 8 toggles a second


def test_unknown_mode_is_refused(make_led: Callable[..., StatusLed]) -> None:
    with pytest.raises(ValueError, match="must be one of steady, off, slow, fast"):
        make_led().set_mode("disco")
