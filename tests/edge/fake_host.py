"""A recording ModuleHost for driver tests: readings and events in lists, other modules' readings fed in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from edge.driver import Driver, Reading
from lecis.clock import Clock, SystemClock
from lecis.errors import DeviceError

WAIT_S = 10.0
POLL_S = 0.02


class FakeHost:
    """What a driver sees of its module; tests await what it records."""

    def __init__(self, clock: Clock | None = None, unit: str = "bench-t") -> None:
        self.unit = unit
        self.clock: Clock = clock or SystemClock()
        self.readings: list[Reading] = []
        self.events: list[tuple[str, str, str]] = []  # (level, code, message)
        self.outputs_changes = 0
        self.others: dict[str, Reading] = {}
        self._changed = asyncio.Event()

    # ---- ModuleHost ---------------------------------------------------------------------
    def reading(self, values: dict[str, float], ts: datetime | None = None) -> None:
        self.readings.append(Reading(ts or self.clock.now(), dict(values)))
        self._notify()

    def event(self, level: str, code: str, message: str) -> None:
        self.events.append((level, code, message))
        self._notify()

    def outputs_changed(self) -> None:
        self.outputs_changes += 1

    def latest(self, module: str) -> Reading | None:
        return self.others.get(module)

    # ---- for tests ------------------------------------------------------------------------
    def feed(self, module: str, **values: float) -> None:
        """Make `values` the latest reading of another module of the unit."""
        self.others[module] = Reading(self.clock.now(), dict(values))

    def codes(self) -> list[str]:
        return [code for _, code, _ in self.events]

    def values(self, name: str) -> list[float]:
        return [r.values[name] for r in self.readings if name in r.values]

    def _notify(self) -> None:
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = WAIT_S, what: str = "") -> None:
        """Return once `predicate()` is true; fail the test naming `what` after `timeout` seconds."""
        async def until() -> None:
            while not predicate():
                self._changed.clear()
                # Woken by what the driver records; the short cap rechecks outside state (a simulator's).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), POLL_S)

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what or predicate}; "
                f"readings={[r.values for r in self.readings][-5:]}, events={self.events[-5:]}"
            ) from None

    async def wait_readings(self, count: int, timeout: float = WAIT_S) -> list[Reading]:
        start = len(self.readings)
        await self.wait_for(lambda: len(self.readings) >= start + count, timeout, f"{count} more readings")
        return self.readings[start:]

    async def wait_event(self, code: str, timeout: float = WAIT_S) -> tuple[str, str, str]:
        start = len(self.events)
        await self.wait_for(lambda: code in self.codes()[start:], timeout, f"a {code!r} event")
        return next(e for e in self.events[start:] if e[1] == code)


@contextlib.asynccontextmanager
async def running(driver: Driver) -> AsyncIterator[asyncio.Task[None]]:
    """Initialize `driver`, run it in the background, and always stop and close it."""
    await driver.initialize()
    task = asyncio.create_task(driver.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, DeviceError):
            await task
        await driver.close()
