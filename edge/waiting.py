"""Waiting on the injected clock or an event, whichever comes first."""

from __future__ import annotations

import asyncio
from typing import Any

from lecis.clock import Clock


async def sleep_or_event(clock: Clock, event: asyncio.Event, seconds: float | None) -> None:
    """Return after `seconds` of `clock` time (never, if None) or as soon as `event` is set.

    The event is cleared on the way out, so the next wait starts fresh.
    """
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(event.wait())]
    if seconds is not None:
        waits.append(asyncio.ensure_future(clock.sleep(seconds)))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    event.clear()
