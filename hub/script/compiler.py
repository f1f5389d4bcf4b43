"""Expression trees turned into nested Python closures, so evaluating one walks no tree (pure, no eval).

Each closure does exactly what its node's `evaluate` does (hub.script.nodes,
hub.script.functions): the same values, the same EvaluationError messages. The
common case (numbers in, a number or a boolean out) is taken first; anything
else goes the nodes' own way.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from hub.script.errors import EvaluationError
from hub.script.functions import Call, _numeric
from hub.script.model import Environment, Value
from hub.script.nodes import (
    MAX_STRING,
    Arithmetic,
    Compare,
    Literal_,
    Logical,
    Name,
    Node,
    Unary,
    arithmetic,
    describe,
    finite,
    number,
    type_of,
)

Compiled = Callable[[Environment], Value]
_isfinite = math.isfinite


def compile_node(node: Node) -> Compiled:
    """A function of the environment that evaluates `node` as `node.evaluate` does."""
    if isinstance(node, Literal_):
        return _literal(node.value)
    if isinstance(node, Name):
        return _name(node.name)
    if isinstance(node, Unary):
        return _unary(node.op, compile_node(node.operand))
    if isinstance(node, Logical):
        return _logical(node.op, compile_node(node.left), compile_node(node.right))
    if isinstance(node, Compare):
        return _compare(node.op, compile_node(node.left), compile_node(node.right))
    if isinstance(node, Arithmetic):
        return _arithmetic(node.op, compile_node(node.left), compile_node(node.right))
    if isinstance(node, Call):
        return _call(node)
    return node.evaluate  # a node kind this compiler does not know walks itself


def _literal(value: Value) -> Compiled:
    return lambda env: value


def _name(name: str) -> Compiled:
    def evaluate(env: Environment) -> Value:
        value = env.lookup(name)
        if isinstance(value, float) and not _isfinite(value):
            raise EvaluationError(f"{name} is {value} (not a usable number)")
        return value

    return evaluate


def _unary(op: str, operand: Compiled) -> Compiled:
    if op == "not":
        def negate(env: Environment) -> Value:
            value = operand(env)
            if value is True:
                return False
            if value is False:
                return True
            raise EvaluationError(f"not: expected true or false, got {describe(value)}")

        return negate

    def minus(env: Environment) -> Value:
        return finite(-number(operand(env), "-"), "-")

    return minus


def _logical(op: str, left: Compiled, right: Compiled) -> Compiled:
    stop = op == "or"  # the left value that decides alone

    def evaluate(env: Environment) -> Value:
        a = left(env)
        if a is not True and a is not False:
            raise EvaluationError(f"{op}: expected true or false, got {describe(a)}")
        if a is stop:
            return a  # short circuit: `stale(x) or x > 5` never reads a stale x
        b = right(env)
        if b is not True and b is not False:
            raise EvaluationError(f"{op}: expected true or false, got {describe(b)}")
        return b

    return evaluate


_NUMBERS = (float, int)


def _compare(op: str, left: Compiled, right: Compiled) -> Compiled:
    if op in ("==", "!="):
        equal = op == "=="

        def same(env: Environment) -> Value:
            a, b = left(env), right(env)
            result = type_of(a) == type_of(b) and a == b
            return result if equal else not result

        return same

    def slow(a: Value, b: Value) -> tuple[float | str, float | str]:
        if type_of(a) == "string" and type_of(b) == "string":
            return str(a), str(b)
        return number(a, op), number(b, op)

    if op == "<":
        def lt(env: Environment) -> Value:
            a, b = left(env), right(env)
            if type(a) in _NUMBERS and type(b) in _NUMBERS:
                return a < b  # type: ignore[operator]
            x, y = slow(a, b)
            return x < y  # type: ignore[operator]

        return lt
    if op == "<=":
        def le(env: Environment) -> Value:
            a, b = left(env), right(env)
            if type(a) in _NUMBERS and type(b) in _NUMBERS:
                return a <= b  # type: ignore[operator]
            x, y = slow(a, b)
            return x <= y  # type: ignore[operator]

        return le
    if op == ">":
        def gt(env: Environment) -> Value:
            a, b = left(env), right(env)
            if type(a) in _NUMBERS and type(b) in _NUMBERS:
                return a > b  # type: ignore[operator]
            x, y = slow(a, b)
            return x > y  # type: ignore[operator]

        return gt

    def ge(env: Environment) -> Value:
        a, b = left(env), right(env)
        if type(a) in _NUMBERS and type(b) in _NUMBERS:
            return a >= b  # type: ignore[operator]
        x, y = slow(a, b)
        return x >= y  # type: ignore[operator]

    return ge


def _arithmetic(op: str, left: Compiled, right: Compiled) -> Compiled:
    def evaluate(env: Environment) -> Value:
        a, b = left(env), right(env)
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            if len(a) + len(b) > MAX_STRING:
                raise EvaluationError(f"+: a string longer than {MAX_STRING} characters")
            return a + b
        return arithmetic(op, number(a, op), number(b, op))

    return evaluate


def _call(node: Call) -> Compiled:
    f = node.function
    if f in ("age", "stale", "fresh"):
        arg = node.args[0]
        assert isinstance(arg, Name)  # the parser allows names only here
        name = arg.name
        if f == "age":
            def age(env: Environment) -> Value:
                seen = env.age(name)
                if seen is None:
                    raise EvaluationError(f"age({name}): no value seen yet")
                return finite(float(seen), f"age({name})")

            return age
        if f == "stale":
            return lambda env: env.is_stale(name)
        return lambda env: not env.is_stale(name)
    args = tuple(compile_node(a) for a in node.args)
    if f == "online":
        unit = args[0]
        return lambda env: env.unit_online(str(unit(env)))

    def numeric(env: Environment) -> Value:
        return _numeric(f, [number(a(env), f) for a in args])

    return numeric
