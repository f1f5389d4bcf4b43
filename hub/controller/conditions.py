"""What an expression sees while the engine evaluates it: latest values, staleness, unit presence.

A reading or signal older than the script's `stale_after` has no value here:
`lookup` raises EvaluationError, so a condition that reads it is not true. Time
is the engine's `now` (passed in), never a clock.
"""

from __future__ import annotations

from hub.script.errors import EvaluationError
from hub.script.model import Expression, Value


def unit_of(name: str) -> str | None:
    """`unit` of `unit/module.reading` or `unit/module`; None for variables and signals."""
    return name.split("/", 1)[0] if "/" in name else None


class Values:
    """Latest readings, derived signals and variables; implements hub.script.model.Environment."""

    def __init__(self, started_at: float, stale_after_s: float) -> None:
        self.started_at = started_at
        self.stale_after_s = stale_after_s
        self.now = started_at
        self.readings: dict[str, tuple[float, float]] = {}  # name -> (value, ts)
        self.signals: dict[str, tuple[float, float]] = {}
        self.variables: dict[str, Value] = {}
        self.online: dict[str, bool] = {}  # unknown units count as online until told otherwise

    def _timed(self, name: str) -> tuple[float, float] | None:
        return self.signals.get(name) or self.readings.get(name)

    def lookup(self, name: str) -> Value:
        if name == "t":
            return self.now - self.started_at
        if name in self.variables:
            return self.variables[name]
        seen = self.signals.get(name) or self.readings.get(name)
        if seen is None:
            raise EvaluationError(f"{name} has no value yet")
        value, ts = seen
        if self.now - ts > self.stale_after_s:
            raise EvaluationError(f"{name} is stale: last value {self.now - ts:.1f} s old "
                                  f"(stale_after {self.stale_after_s:g} s)")
        return value

    def age(self, name: str) -> float | None:
        seen = self.signals.get(name) or self.readings.get(name)
        return None if seen is None else self.now - seen[1]

    def is_stale(self, name: str) -> bool:
        seen = self.signals.get(name) or self.readings.get(name)
        return seen is None or self.now - seen[1] > self.stale_after_s

    def unit_online(self, unit: str) -> bool:
        return self.online.get(unit, True)

    def fresh(self, name: str) -> float | None:
        """A reading's or signal's value if fresh, else None (for loops)."""
        seen = self._timed(name)
        if seen is None or self.now - seen[1] > self.stale_after_s:
            return None
        return seen[0]

    def truth(self, expr: Expression) -> bool:
        """True only when the expression evaluates, on fresh values, to something true."""
        try:
            return bool(expr.evaluate(self))
        except EvaluationError:
            return False

    def value(self, expr: Expression) -> Value:
        """The value, or None when it has none now (stale, missing, division by zero)."""
        try:
            return expr.evaluate(self)
        except EvaluationError:
            return None
