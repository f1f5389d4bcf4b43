"""Fixtures and fakes for the GPIO tests: mock pins, a clock the test moves, a host and a run.

A test module takes the fixtures by name: `pin_factory = gpio_fixtures.pin_factory`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.command_run import RunHandle
from edge.driver import Reading


async def settle(rounds: int = 30) -> None:
    """Let every task that can run, run (callbacks hopped onto the loop included)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class ManualClock:
    """Virtual time: sleeps end only when the test calls `advance`, in deadline order."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
        self._t = 0.0
        self._order = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        return self._t

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._t + seconds, next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking each sleeper at its own deadline."""
        target = self._t + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            when, _, future = heapq.heappop(self._sleepers)
            if future.done():  # its sleep was cancelled
                continue
            self._t = max(self._t, when)
            future.set_result(None)
            await settle()
        self._t = target
        await settle()


class FakeHost:
    """ModuleHost that records what a driver reports."""

    def __init__(self, clock: Any, unit: str = "bench-t") -> None:
        self.unit = unit
        self.clock = clock
        self.events: list[tuple[str, str, str]] = []
        self.changes = 0

    def reading(self, values: dict[str, float], ts: datetime | None = None) -> None:
        raise AssertionError("equipment drivers report no readings")

    def event(self, level: str, code: str, message: str) -> None:
        self.events.append((level, code, message))

    def outputs_changed(self) -> None:
        self.changes += 1

    def latest(self, module: str) -> Reading | None:
        return None


def command_run(clock: Any) -> RunHandle:
    """The module's own CommandRun, on the test's clock."""
    return RunHandle(clock, "cmd-test")


@pytest.fixture
def pin_factory() -> Iterator[MockFactory]:
    """A fresh MockFactory with PWM-capable pins, passed to devices explicitly."""
    factory = MockFactory(pin_class=MockPWMPin)
    try:
        yield factory
    finally:
        factory.close()
        factory.reset()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
