"""Start/stop buttons on mock pins: debouncing on the clock, the stop hold, edges from other threads."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gpiozero import Button
from gpiozero.pins.mock import MockFactory

import edge.buttons
from edge.buttons import UnitButtons
from tests.edge import gpio_fixtures
from tests.edge.gpio_fixtures import ManualClock

pin_factory = gpio_fixtures.pin_factory
clock = gpio_fixtures.clock

START, STOP = 5, 6
DEBOUNCE = 0.05
HOLD = 2.0


class Bench:
    """The buttons under test, the actions they reported, and fingers to press them."""

    def __init__(self, factory: MockFactory, clock: ManualClock) -> None:
        self.factory = factory
        self.clock = clock
        self.actions: list[tuple[str, str]] = []
        self.buttons: UnitButtons | None = None

    async def start(self, **options: Any) -> UnitButtons:
        settings: dict[str, Any] = {
            "start_pin": START, "stop_pin": STOP, "debounce_s": DEBOUNCE, "estop_hold_s": HOLD,
            "pull_up": True,
        }
        settings.update(options)
        self.buttons = UnitButtons(
            pin_factory=self.factory, clock=self.clock,
            on_action=lambda button, action: self.actions.append((button, action)), **settings,
        )
        await self.buttons.start()
        return self.buttons

    def down(self, pin: int) -> None:
        self.factory.pin(pin).drive_low()  # wired to ground: pressed is low

    def up(self, pin: int) -> None:
        self.factory.pin(pin).drive_high()

    async def bounce(self, pin: int, edges: int, gap_s: float) -> None:
        """`edges` alternating edges starting with a press, `gap_s` apart."""
        for i in range(edges):
            (self.down if i % 2 == 0 else self.up)(pin)
            await self.clock.advance(gap_s)


@pytest.fixture
async def bench(pin_factory: MockFactory, clock: ManualClock) -> AsyncIterator[Bench]:
    made = Bench(pin_factory, clock)
    yield made
    if made.buttons is not None:
        made.buttons.close()


async def test_a_burst_shorter_than_debounce_is_no_press(bench: Bench) -> None:
    await bench.start()
    await bench.bounce(START, 6, 0.01)  # ends released after 60 ms of chatter
    await bench.clock.advance(1.0)
    assert bench.actions == []


async def test_a_clean_press_counts_once(bench: Bench) -> None:
    await bench.start()
    bench.down(START)
    await bench.clock.advance(DEBOUNCE - 0.001)
    assert bench.actions == []  # not believed before debounce_s
    await bench.clock.advance(0.002)
    assert bench.actions == [("start", "pressed")]
    await bench.clock.advance(5.0)
    bench.up(START)
    await bench.clock.advance(1.0)
    assert bench.actions == [("start", "pressed")]  # no hold action for start, nothing on release


async def test_a_bouncing_press_counts_once(bench: Bench) -> None:
    await bench.start()
    await bench.bounce(STOP, 5, 0.005)  # chatter that settles pressed
    await bench.clock.advance(0.2)
    bench.up(STOP)
    await bench.clock.advance(0.2)
    assert bench.actions == [("stop", "pressed")]


async def test_holding_stop_reports_held_once(bench: Bench) -> None:
    await bench.start()
    bench.down(STOP)
    await bench.clock.advance(HOLD - 0.01)
    assert bench.actions == [("stop", "pressed")]
    await bench.clock.advance(0.02)
    assert bench.actions == [("stop", "pressed"), ("stop", "held")]
    await bench.clock.advance(10.0)
    assert bench.actions == [("stop", "pressed"), ("stop", "held")]


async def test_a_glitch_while_holding_stop_does_not_reset_the_hold(bench: Bench) -> None:
    await bench.start()
    bench.down(STOP)
    await bench.clock.advance(1.0)
    bench.up(STOP)  # contact lost for a moment...
    await bench.clock.advance(0.01)
    bench.down(STOP)  # ...and back within debounce_s
    await bench.clock.advance(1.0)
    assert bench.actions == [("stop", "pressed"), ("stop", "held")]


async def test_releasing_stop_before_the_hold_is_a_press_only(bench: Bench) -> None:
    await bench.start()
    bench.down(STOP)
    await bench.clock.advance(1.0)
    bench.up(STOP)
    await bench.clock.advance(5.0)
    bench.down(STOP)
    await bench.clock.advance(1.0)
    bench.up(STOP)
    await bench.clock.advance(5.0)
    assert bench.actions == [("stop", "pressed"), ("stop", "pressed")]


async def test_edges_from_another_thread_reach_the_loop(bench: Bench) -> None:
    await bench.start()
    # On a Pi, gpiozero calls back from its own thread.
    finger = threading.Thread(target=bench.down, args=(STOP,))
    finger.start()
    finger.join(5)
    await bench.clock.advance(HOLD + 0.1)
    assert bench.actions == [("stop", "pressed"), ("stop", "held")]


async def test_a_stop_pressed_at_start_counts_but_a_start_pressed_does_not(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    def held_at_boot(*args: Any, **kwargs: Any) -> Button:
        device = Button(*args, **kwargs)
        device.pin.drive_low()  # a finger (or a jam) holds it while the unit starts
        return device

    monkeypatch.setattr(edge.buttons, "Button", held_at_boot)
    await bench.start()
    await bench.clock.advance(HOLD + 0.1)
    assert bench.actions == [("stop", "pressed"), ("stop", "held")]
    bench.up(START)
    await bench.clock.advance(1.0)
    bench.down(START)
    await bench.clock.advance(1.0)
    assert bench.actions[2:] == [("start", "pressed")]


async def test_buttons_pulled_down_press_high(bench: Bench) -> None:
    await bench.start(pull_up=False, start_pin=None)
    bench.factory.pin(STOP).drive_high()
    await bench.clock.advance(0.1)
    assert bench.actions == [("stop", "pressed")]


async def test_close_releases_the_pins_and_ignores_later_edges(bench: Bench) -> None:
    buttons = await bench.start()
    bench.down(STOP)
    buttons.close()
    await bench.clock.advance(HOLD + 1.0)
    assert bench.actions == []
    await bench.start()  # the pins are free for a new owner
    assert bench.buttons is not None and set(bench.buttons.buttons) == {"start", "stop"}
