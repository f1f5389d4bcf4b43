"""Simulated time for accelerated runs: it moves only when the runner sets it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from lecis.errors import SettingInvalid

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


class SimClock:
    """A `lecis.clock.Clock` whose present is `set_elapsed(t)` seconds after `start`.

    `sleep` does not wait for simulated time (nothing in a simulated run sleeps
    on it): it yields to the event loop once, so a background writer is not starved.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or DEFAULT_START
        if self.start.tzinfo is None:
            raise SettingInvalid("the simulated clock's start must be timezone-aware (UTC)")
        self._t = 0.0

    @property
    def elapsed(self) -> float:
        return self._t

    def set_elapsed(self, t: float) -> None:
        if t < self._t:
            raise SettingInvalid(f"simulated time cannot go back from {self._t:g} s to {t:g} s")
        self._t = t

    def epoch(self, t: float | None = None) -> float:
        """Epoch seconds (UTC) of elapsed `t` (now when None)."""
        return self.start.timestamp() + (self._t if t is None else t)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        return self._t

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
