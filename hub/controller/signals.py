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

    def add(self, ts: float, value: float) -> float | None:
        """Add a point; the signal's new value, or None when it has none yet (slope of one point)."""
        if self.points and ts <= self.points[-1][0]:
            return None  # a repeated or older reading does not move the window
        self.points.append((ts, value))
        while self.points and self.points[0][0] < ts - self.signal.window_s:
            self.points.popleft()
        return self.current()

    def current(self) -> float | None:
        values = [v for _, v in self.points]
        if not values:
            return None
        kind = self.signal.kind
        if kind == "mean":
            return sum(values) / len(values)
        if kind == "min":
            return min(values)
        if kind == "max":
            return max(values)
        return _slope(list(self.points), self.signal.scale)


def _slope(points: list[tuple[float, float]], scale: float) -> float | None:
    if len(points) < 2:
        return None
    t0 = points[0][0]
    n = len(points)
    mean_t = sum(t - t0 for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - t0 - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - t0 - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * scale
