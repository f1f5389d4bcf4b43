"""Injectable time: wall clock for timestamps, monotonic clock for intervals.

Everything that waits or stamps takes a `Clock`, so tests and the lab can run
scripts and sessions accelerated.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

from lecis.errors import SettingInvalid, TimestampInvalid


class Clock(Protocol):
    def now(self) -> datetime:
        """Current UTC time (timezone-aware)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Time that runs `factor` times faster than real time, from a start instant."""

    def __init__(self, factor: float, start: datetime | None = None) -> None:
        if factor <= 0:
            raise SettingInvalid(f"clock factor must be above 0, got {factor}")
        self.factor = factor
        self._start_wall = start or datetime.now(UTC)
        self._start_mono = time.monotonic()

    def now(self) -> datetime:
        from datetime import timedelta

        return self._start_wall + timedelta(seconds=self.monotonic())

    def monotonic(self) -> float:
        return (time.monotonic() - self._start_mono) * self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)


def iso_ts(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds and `Z`, as the contract requires."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_ts(text: str) -> datetime:
    """Inverse of `iso_ts`; raises TimestampInvalid (a ValueError) naming the text on a bad stamp."""
    if not isinstance(text, str) or not text.endswith("Z"):
        raise TimestampInvalid(f"timestamp {text!r} is not UTC ISO 8601 ending in 'Z'")
    return datetime.fromisoformat(text[:-1] + "+00:00")
