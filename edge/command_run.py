"""The handle a driver waits on while one timed command runs (pause, abort, finish)."""

from __future__ import annotations

import asyncio

from edge.driver import CommandAborted
from edge.waiting import sleep_or_event
from lecis.clock import Clock


class RunHandle:
    """Implements edge.driver.CommandRun for one running command."""

    def __init__(self, clock: Clock, command_id: str) -> None:
        self.clock = clock
        self.command_id = command_id
        self.paused = False
        self.abort_reason: str | None = None
        self.finish_reason: str | None = None
        self._wake = asyncio.Event()

    def pause(self) -> None:
        self.paused = True
        self._wake.set()

    def resume(self) -> None:
        self.paused = False
        self._wake.set()

    def abort(self, reason: str) -> None:
        self.abort_reason = reason
        self._wake.set()

    def finish(self, reason: str) -> None:
        self.finish_reason = reason
        self._wake.set()

    async def wait(self, seconds: float) -> float:
        ran = 0.0
        while True:
            if self.abort_reason is not None:
                raise CommandAborted(self.abort_reason)
            if self.finish_reason is not None or ran >= seconds:
                return ran
            if self.paused:
                await sleep_or_event(self.clock, self._wake, None)
                continue
            start = self.clock.monotonic()
            await sleep_or_event(self.clock, self._wake, seconds - ran)
            ran += self.clock.monotonic() - start
