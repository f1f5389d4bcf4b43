"""Supervision of the unit's long-lived tasks: one that dies is restarted, or the unit exits safely.

A task that ends by an exception (or, for a task meant to run forever, by
returning) is logged and restarted after a capped backoff. More than
`max_restarts` failures of one task within `window_s` is a fault the process
cannot mend: `on_fatal(reason)` is called once, and the unit drives its
outputs safe and exits non-zero so that supervisord starts it afresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from lecis.clock import Clock

log = logging.getLogger("labedge.safety")

MAX_RESTARTS = 5
WINDOW_S = 60.0
INITIAL_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


class TaskSupervisor:
    """Starts named tasks and keeps them alive until `close()`."""

    def __init__(self, clock: Clock, on_fatal: Callable[[str], None], max_restarts: int = MAX_RESTARTS,
                 window_s: float = WINDOW_S, initial_backoff_s: float = INITIAL_BACKOFF_S,
                 max_backoff_s: float = MAX_BACKOFF_S) -> None:
        self.clock = clock
        self.on_fatal = on_fatal
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.closing = False
        self.restarts: dict[str, int] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._fatal = False

    def start(self, name: str, run: Callable[[], Awaitable[None]], forever: bool = True) -> None:
        """Run `run()` as task `name`; `forever=False` lets it finish by returning."""
        self.restarts[name] = 0
        self.tasks[name] = asyncio.create_task(self._keep(name, run, forever), name=name)

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]], forever: bool) -> None:
        failures: deque[float] = deque()
        backoff = self.initial_backoff_s
        while True:
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                what = f"{type(exc).__name__}: {exc}"
                if not self.closing:
                    log.error("task %s died (%s)", name, what, exc_info=exc)
            else:
                if not forever or self.closing:
                    return
                what = "it returned"
                log.error("task %s ended unexpectedly (it should run until the unit stops)", name)
            if self.closing:
                return
            now = self.clock.monotonic()
            failures.append(now)
            while failures and now - failures[0] > self.window_s:
                failures.popleft()
            if len(failures) > self.max_restarts:
                self._give_up(f"task {name} failed {len(failures)} times within {self.window_s:g} s "
                              f"(last: {what})")
                return
            self.restarts[name] += 1
            log.warning("restarting task %s in %.2f s (restart %d)", name, backoff, self.restarts[name])
            await self.clock.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    def _give_up(self, reason: str) -> None:
        if self._fatal:
            return
        self._fatal = True
        log.critical("%s; stopping the unit with its outputs safe", reason)
        self.on_fatal(reason)

    async def wait(self, name: str, timeout: float) -> None:
        """Wait up to `timeout` s for task `name` to end by itself, then cancel it."""
        task = self.tasks.get(name)
        if task is None:
            return
        done, _ = await asyncio.wait([task], timeout=timeout)
        if not done:
            task.cancel()

    async def close(self) -> None:
        """Stop restarting, cancel every task and wait for them."""
        self.closing = True
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
