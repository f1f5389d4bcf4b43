"""Compiled expressions give what the tree gives: the same value of the same type, or the same error."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.script.errors import EvaluationError, ExpressionError
from hub.script.expr import parse_expression
from hub.script.model import Position, Value

AT = Position("run.yaml", 3, 9)
VALUES: dict[str, Value] = {"n": 3, "big": 2**62, "x": 2.5, "neg": -1.5, "zero": 0, "on": True, "off": False,
                            "s": "run", "r": "rest", "nan": math.nan, "inf": math.inf,
                            "u/m.v": 6.75}
MISSING = ("u/m.gone", "stale_one")


class Env:
    def lookup(self, name: str) -> Value:
        if name == "t":
            return 12.0
        if name not in VALUES:
            raise EvaluationError(f"{name} has no value yet")
        return VALUES[name]

    def age(self, name: str) -> float | None:
        return None if name in MISSING else 4.0

    def is_stale(self, name: str) -> bool:
        return name in MISSING

    def unit_online(self, unit: str) -> bool:
        return unit == "bench-1"


def outcome(run: object) -> tuple[str, object]:
    try:
        value = run()  # type: ignore[operator]
    except EvaluationError as exc:
        return "error", str(exc)
    return type(value).__name__, value


def same(text: str) -> None:
    try:
        expr = parse_expression(text, AT)
    except ExpressionError:
        return  # not an expression: nothing to compare
    env = Env()
    tree = outcome(lambda: expr.root.evaluate(env))
    compiled = outcome(lambda: expr.evaluate(env))
    assert compiled == tree or (tree[0] == compiled[0] == "float" and math.isnan(tree[1])
                                and math.isnan(compiled[1])), text  # type: ignore[arg-type]


ATOMS = st.sampled_from([*VALUES, *MISSING, "t", "1", "0", "2.5", "-3", "1e308", "true", "false", "'a'",
                         "'run'", "30s", "online('bench-1')", "online('x')", "age(u/m.v)", "age(u/m.gone)",
                         "stale(u/m.gone)", "fresh(u/m.v)", "stale(x)"])
BINARY = ["or", "and", "<", "<=", ">", ">=", "==", "!=", "+", "-", "*", "/", "%", "**"]


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(BINARY), children).map(lambda p: f"({p[0]} {p[1]} {p[2]})"),
        children.map(lambda c: f"not {c}"),
        children.map(lambda c: f"-{c}"),
        st.tuples(st.sampled_from(["abs", "round", "min", "max", "clamp"]),
                  st.lists(children, min_size=1, max_size=3)).map(lambda p: f"{p[0]}({', '.join(p[1])})"),
    )


EXPRESSIONS = st.recursive(ATOMS, _combine, max_leaves=8)


@settings(max_examples=600, deadline=None)
@given(EXPRESSIONS)
def test_compiled_expressions_evaluate_as_the_tree_does(text: str) -> None:
    same(text)


def test_compiled_expressions_keep_the_messages_a_user_reads() -> None:
    for text in ["n > 's'", "not n", "on and n", "n or on", "x / zero", "nan + 1", "big * big * big",
                 "s < 3", "s + 1", "age(u/m.gone) > 1", "u/m.gone > 1", "stale_one or on",
                 "off and u/m.gone > 1", "on or u/m.gone > 1", "clamp(x, 3, 1)", "round(x, 0.5)",
                 "(-8) ** 0.5", "zero ** -1", "inf > 1", "'a' + 'b' == 'ab'", "n == 3.0", "on == 1"]:
        same(text)
    expr = parse_expression("u/m.gone > 1", AT)
    try:
        expr.evaluate(Env())
    except EvaluationError as exc:
        assert str(exc) == "u/m.gone has no value yet"
    else:
        raise AssertionError("a missing reading evaluated")
