"""The fixed set of functions an expression may call, their arity, argument kinds and results."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hub.script.errors import EvaluationError
from hub.script.model import Environment, Value
from hub.script.nodes import MAX_INT, Name, Node, Type, describe, finite, number


@dataclass(frozen=True)
class Signature:
    min_args: int
    max_args: int | None
    args: str  # "number": any number expressions; "name": one reading/signal name; "unit": one unit string
    result: Type
    usage: str


FUNCTIONS: dict[str, Signature] = {
    "abs": Signature(1, 1, "number", "number", "abs(x)"),
    "min": Signature(2, None, "number", "number", "min(a, b, ...)"),
    "max": Signature(2, None, "number", "number", "max(a, b, ...)"),
    "round": Signature(1, 2, "number", "number", "round(x) or round(x, decimals)"),
    "clamp": Signature(3, 3, "number", "number", "clamp(x, low, high)"),
    "age": Signature(1, 1, "name", "number", "age(unit/module.reading) or age(signal)"),
    "stale": Signature(1, 1, "name", "boolean", "stale(unit/module.reading) or stale(signal)"),
    "fresh": Signature(1, 1, "name", "boolean", "fresh(unit/module.reading) or fresh(signal)"),
    "online": Signature(1, 1, "unit", "boolean", 'online("unit-id")'),
}


@dataclass(frozen=True)
class Call(Node):
    function: str
    args: tuple[Node, ...]

    def evaluate(self, env: Environment) -> Value:
        f = self.function
        if f in ("age", "stale", "fresh"):
            arg = self.args[0]
            assert isinstance(arg, Name)  # the parser allows names only here
            if f == "age":
                age = env.age(arg.name)
                if age is None:
                    raise EvaluationError(f"age({arg.name}): no value seen yet")
                return finite(float(age), f"age({arg.name})")
            stale = env.is_stale(arg.name)
            return stale if f == "stale" else not stale
        if f == "online":
            return env.unit_online(str(self.args[0].evaluate(env)))
        values = [number(a.evaluate(env), f) for a in self.args]
        return _numeric(f, values)


def _numeric(f: str, values: list[int | float]) -> int | float:
    if f == "abs":
        return finite(abs(values[0]), f)
    if f == "min":
        return min(values)
    if f == "max":
        return max(values)
    if f == "clamp":
        x, low, high = values
        if low > high:
            raise EvaluationError(f"clamp: low {describe(low)} is above high {describe(high)}")
        return min(max(x, low), high)
    return _round(values)


def _round(values: list[int | float]) -> int | float:
    """Halves away from zero (2.5 -> 3, -2.5 -> -3), as on paper; `round(x, n)` keeps n decimals."""
    x = values[0]
    decimals = values[1] if len(values) > 1 else 0
    if decimals != int(decimals) or not 0 <= decimals <= 15:
        raise EvaluationError(f"round: decimals must be a whole number from 0 to 15, "
                              f"got {describe(decimals)}")
    if isinstance(x, int):
        return x
    if abs(x) >= 2**52:  # already whole; beyond 64 bits it stays a decimal number
        return int(x) if not decimals and abs(x) <= MAX_INT else x
    scale = 10 ** int(decimals)
    whole = math.floor(abs(x) * scale + 0.5)
    rounded = math.copysign(whole / scale, x)
    return int(rounded) if not decimals else rounded
