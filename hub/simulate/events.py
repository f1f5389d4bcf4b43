"""The simulated run's agenda: callbacks due at simulated times, in time order, cancellable."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True)
class Scheduled:
    at: float
    order: int
    action: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Agenda:
    """`at(t, action)` schedules; `pop_due(t)` hands back what is due by `t`, earliest first."""

    def __init__(self) -> None:
        self._heap: list[Scheduled] = []
        self._order = itertools.count()

    def at(self, t: float, action: Callable[[], None]) -> Scheduled:
        item = Scheduled(t, next(self._order), action)
        heapq.heappush(self._heap, item)
        return item

    def next_time(self) -> float | None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].at if self._heap else None

    def pop_due(self, t: float) -> Scheduled | None:
        """The earliest action due at or before `t`, or None."""
        due = self.next_time()
        if due is None or due > t:
            return None
        return heapq.heappop(self._heap)
