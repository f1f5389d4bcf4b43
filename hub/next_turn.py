"""One call at the event loop's next turn, however often it is asked for before then."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class NextTurn:
    """`soon()` schedules `fn` with `call_soon` unless it is already scheduled.

    What a burst asks for in one turn (fifty readings, ten commands) is done once, after
    everything already queued for that turn: the hub's link hands a batch of messages over
    this way, and the controller its status check and the commands' lines for the recorder.
    Calling `fn` directly as well is fine; the scheduled call then finds less or nothing to do.
    """

    def __init__(self, fn: Callable[[], None]) -> None:
        self._fn = fn
        self._due = False

    def soon(self) -> None:
        """Must be called on the loop's thread, with the loop running."""
        if not self._due:
            self._due = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._due = False
        self._fn()
