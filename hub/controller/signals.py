"""Derived signals over a time window of one reading: mean, slope (least squares), min, max.

The window is kept in reading time (the units' own timestamps), so a backlog of
historical readings and live ones give the same values.
"""

from __future__ import annotations

from collections import deque

from hub.script.model import Signal


class SignalWindow:
    def __init__(self, signal: Signal, points: list[tuple[float, float]] | None = None) -> None:
        self.signal = signal
        self.points: deque[tuple[float, float]] = deque(points or [])
        # the same points as two columns: the sums below run over them at C speed, in the same order
        self._ts: deque[float] = deque(t for t, _ in self.points)
        self._vs: deque[float] = deque(v for _, v in self.points)

    def add(self, ts: float, value: float) -> float | None:
        """Add a point; the signal's new value, or None when it has none yet (slope of one point)."""
        points = self.points
        if points and ts <= points[-1][0]:
            return None  # a repeated or older reading does not move the window
        points.append((ts, value))
        self._ts.append(ts)
        self._vs.append(value)
        start = ts - self.signal.window_s
        while points and points[0][0] < start:
            points.popleft()
            self._ts.popleft()
            self._vs.popleft()
        return self.current()

    def current(self) -> float | None:
        values = self._vs
        if not values:
            return None
        kind = self.signal.kind
        if kind == "mean":
            return sum(values) / len(values)
        if kind == "min":
            return min(values)
        if kind == "max":
            return max(values)
        return _slope(self._ts, values, self.signal.scale)


def _slope(times: deque[float], values: deque[float], scale: float) -> float | None:
    """Least squares slope, summed term by term in time order (so a restored window gives the same)."""
    n = len(times)
    if n < 2:
        return None
    t0 = times[0]
    rel = [t - t0 for t in times]
    mean_t = sum(rel) / n
    mean_v = sum(values) / n
    dt = [x - mean_t for x in rel]
    var = sum([x ** 2 for x in dt])
    if var == 0:
        return None
    cov = sum([x * (v - mean_v) for x, v in zip(dt, values, strict=True)])
    return cov / var * scale
