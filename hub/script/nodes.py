"""The expression tree and its evaluation over plain values (no Python eval anywhere).

Numbers are int or float and every result is finite: a NaN, an infinity or a
whole number beyond 64 bits is an EvaluationError, never a value that would
travel on into a command. `and`, `or`, `not` take booleans only, so a number
used as a condition is a mistake reported, not a truthiness guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from hub.script.errors import EvaluationError
from hub.script.model import Environment, Value

Type = Literal["number", "boolean", "string", "any"]
MAX_INT = 2**63 - 1
MAX_STRING = 10_000


def describe(value: Value) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37]) + "..."
    return f"{value:g}" if isinstance(value, float) else str(value)


def type_of(value: Value) -> Type:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string" if isinstance(value, str) else "any"


def number(value: Value, what: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvaluationError(f"{what}: expected a number, got {describe(value)}")
    return value


def finite(value: int | float, what: str) -> int | float:
    """`value` if it is a usable number, else EvaluationError saying why."""
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise EvaluationError(f"{what}: whole number beyond ±{MAX_INT}; write a decimal point "
                                  "(1.0) to compute with decimals")
        return value
    if math.isnan(value):
        raise EvaluationError(f"{what}: the result is not a number (NaN)")
    if math.isinf(value):
        raise EvaluationError(f"{what}: the result is too large (infinite)")
    return value


@dataclass(frozen=True)
class Node:
    start: int  # offset of its first character in the expression text
    height: int

    def evaluate(self, env: Environment) -> Value:
        raise NotImplementedError


@dataclass(frozen=True)
class Literal_(Node):
    value: int | float | bool | str

    def evaluate(self, env: Environment) -> Value:
        return self.value


@dataclass(frozen=True)
class Name(Node):
    """A reading `unit/module.reading`, a module `unit/module`, a variable, a signal, or `t`."""

    name: str

    def evaluate(self, env: Environment) -> Value:
        value = env.lookup(self.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise EvaluationError(f"{self.name} is {value} (not a usable number)")
        return value


@dataclass(frozen=True)
class Unary(Node):
    op: Literal["-", "not"]
    operand: Node

    def evaluate(self, env: Environment) -> Value:
        value = self.operand.evaluate(env)
        if self.op == "not":
            if not isinstance(value, bool):
                raise EvaluationError(f"not: expected true or false, got {describe(value)}")
            return not value
        return finite(-number(value, "-"), "-")


@dataclass(frozen=True)
class Logical(Node):
    op: Literal["and", "or"]
    left: Node
    right: Node

    def evaluate(self, env: Environment) -> Value:
        left = self.left.evaluate(env)
        if not isinstance(left, bool):
            raise EvaluationError(f"{self.op}: expected true or false, got {describe(left)}")
        if left == (self.op == "or"):
            return left  # short circuit: `stale(x) or x > 5` never reads a stale x
        right = self.right.evaluate(env)
        if not isinstance(right, bool):
            raise EvaluationError(f"{self.op}: expected true or false, got {describe(right)}")
        return right


@dataclass(frozen=True)
class Compare(Node):
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    left: Node
    right: Node

    def evaluate(self, env: Environment) -> Value:
        a, b = self.left.evaluate(env), self.right.evaluate(env)
        if self.op in ("==", "!="):
            same = type_of(a) == type_of(b) and a == b
            return same if self.op == "==" else not same
        if type_of(a) == "string" and type_of(b) == "string":
            sa, sb = str(a), str(b)
            pair: tuple[float | str, float | str] = (sa, sb)
        else:
            pair = (number(a, self.op), number(b, self.op))
        x, y = pair
        if self.op == "<":
            return x < y  # type: ignore[operator]
        if self.op == "<=":
            return x <= y  # type: ignore[operator]
        if self.op == ">":
            return x > y  # type: ignore[operator]
        return x >= y  # type: ignore[operator]


@dataclass(frozen=True)
class Arithmetic(Node):
    op: Literal["+", "-", "*", "/", "%", "**"]
    left: Node
    right: Node

    def evaluate(self, env: Environment) -> Value:
        a, b = self.left.evaluate(env), self.right.evaluate(env)
        if self.op == "+" and isinstance(a, str) and isinstance(b, str):
            if len(a) + len(b) > MAX_STRING:
                raise EvaluationError(f"+: a string longer than {MAX_STRING} characters")
            return a + b
        return arithmetic(self.op, number(a, self.op), number(b, self.op))


def arithmetic(op: str, x: int | float, y: int | float) -> int | float:
    try:
        if op == "+":
            result = x + y
        elif op == "-":
            result = x - y
        elif op == "*":
            result = x * y
        elif op == "/":
            if y == 0:
                raise EvaluationError(f"division by zero ({describe(x)} / 0)")
            result = x / y
        elif op == "%":
            if y == 0:
                raise EvaluationError(f"remainder of a division by zero ({describe(x)} % 0)")
            result = x % y
        else:
            result = power(x, y)
    except OverflowError:
        raise EvaluationError(f"{op}: the result is too large") from None
    return finite(result, op)


def power(x: int | float, y: int | float) -> int | float:
    if x == 0 and y < 0:
        raise EvaluationError("0 ** a negative number divides by zero")
    if x < 0 and y != int(y):
        raise EvaluationError(f"{describe(x)} ** {describe(y)}: a negative number to a fractional power")
    if isinstance(x, int) and isinstance(y, int) and y >= 0:
        if abs(x) >= 2 and y > 64:
            raise EvaluationError(f"{x} ** {y}: whole number beyond ±{MAX_INT}")
        return int(x**y)
    return float(float(x) ** float(y))  # an overflow raises OverflowError, turned into our error above
