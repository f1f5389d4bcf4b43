"""The expression grammar: values, precedence, names, errors at the exact column, hostile text."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.script.errors import EvaluationError, ExpressionError
from hub.script.expr import parse_expression
from hub.script.model import Position, Value
from hub.script.template import parse_template, render_parts

AT = Position("run.yaml", 7, 12)


class Env:
    """A plain environment: values by name, ages, stale names, units online."""

    def __init__(self, values: dict[str, Value] | None = None, stale: set[str] | None = None) -> None:
        self.values = {"bench-1/do1.mg_l": 5.0, "do_high": 7.0, "cycles": 2, "t": 90.0, "mode": "run",
                       **(values or {})}
        self.stale = stale or set()

    def lookup(self, name: str) -> Value:
        if name in self.stale:
            raise EvaluationError(f"{name} is stale")
        if name not in self.values:
            raise EvaluationError(f"{name} has no value")
        return self.values[name]

    def age(self, name: str) -> float | None:
        return 40.0 if name in self.values else None

    def is_stale(self, name: str) -> bool:
        return name in self.stale or name not in self.values

    def unit_online(self, unit: str) -> bool:
        return unit == "bench-1"


def value(text: str, env: Env | None = None) -> Value:
    return parse_expression(text, AT).evaluate(env or Env())


def error(text: str) -> tuple[int | None, int | None, str]:
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, AT)
    problem = info.value.problem
    return problem.line, problem.column, problem.message


@pytest.mark.parametrize(("text", "expected"), [
    ("bench-1/do1.mg_l - 2", 3.0),
    ("bench-1/do1.mg_l-2", 3.0),
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("-2 ** 2", -4),
    ("2 ** -1", 0.5),
    ("2 ** 3 ** 2", 512),
    ("7 % 3", 1),
    ("10/4", 2.5),
    ("30s / 2", 15.0),
    ("1h30m", 5400.0),
    ("1.5h", 5400.0),
    ("2m + 30s", 150.0),
    ("1 < 2 and not false", True),
    ("1 > 2 or 3 >= 3", True),
    ("cycles == 2", True),
    ("cycles == 2.0", True),
    ("true == 1", False),
    ("mode == 'run'", True),
    ("mode != \"stop\"", True),
    ("'a' + \"b\"", "ab"),
    ("'a\\'b'", "a'b"),
    ("abs(-3)", 3),
    ("min(4, 2, 9)", 2),
    ("max(bench-1/do1.mg_l, do_high)", 7.0),
    ("round(2.5)", 3),
    ("round(-2.5)", -3),
    ("round(3.14159, 2)", 3.14),
    ("clamp(12, 0, 10)", 10),
    ("age(bench-1/do1.mg_l)", 40.0),
    ("stale(bench-1/do1.mg_l)", False),
    ("fresh(bench-1/do1.mg_l)", True),
    ("online(\"bench-1\")", True),
    ("online('bench-2')", False),
    ("t > 1m", True),
    ("9223372036854775807", 2**63 - 1),
    ("1e300 * 1e-300", 1.0),
])
def test_values(text: str, expected: Value) -> None:
    got = value(text)
    assert got == expected and type(got) is type(expected)


def test_names_are_the_readings_signals_and_variables_read() -> None:
    expr = parse_expression("bench-1/do1.mg_l > do_high and stale(our) or online('bench-2') or t > 5", AT)
    assert expr.names == {"bench-1/do1.mg_l", "do_high", "our"}
    assert expr.units == {"bench-2"}
    assert expr.timed
    assert not parse_expression("bench-1/do1.mg_l > do_high", AT).timed
    assert expr.where("do_high") == Position("run.yaml", 7, 12 + 19)


def test_short_circuit_never_reads_a_stale_value() -> None:
    env = Env(stale={"bench-1/do1.mg_l"})
    assert value("stale(bench-1/do1.mg_l) or bench-1/do1.mg_l > 3", env) is True
    with pytest.raises(EvaluationError, match="stale"):
        value("bench-1/do1.mg_l > 3", env)


@pytest.mark.parametrize(("text", "message"), [
    ("1 / 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("0 ** -1", "divides by zero"),
    ("(0 - 8) ** 0.5", "fractional power"),
    ("2 ** 64", "whole number beyond"),
    ("9223372036854775807 + 1", "whole number beyond"),
    ("10.0 ** 400", "too large"),
    ("1e308 * 10", "too large"),
    ("1 and true", "expected true or false, got 1"),
    ("not 3", "expected true or false"),
    ("'a' < 1", "expected a number"),
    ("-'a'", "expected a number"),
    ("clamp(1, 5, 0)", "low 5 is above high 0"),
    ("round(1.5, 20)", "decimals"),
    ("age(never)", "no value seen yet"),
    ("nan_reading > 1", "not a usable number"),
])
def test_evaluation_errors(text: str, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        value(text, Env({"nan_reading": math.nan}))


@pytest.mark.parametrize(("text", "column", "message"), [
    ("1 +", 15, "expected a value, got the end"),
    ("a < b < c", 18, "comparisons do not chain"),
    ("x = 3", 14, "use '=='"),
    ("a && b", 14, "use 'and'"),
    ("2h30", 12, "not a number or duration"),
    ("1m1m", 12, "not a duration"),
    ("foo(1)", 12, "unknown function 'foo'"),
    ("min(1)", 12, "min takes at least 2 values"),
    ("clamp(1, 2)", 12, "clamp takes 3 values"),
    ("age(1)", 16, "expected a reading or signal name"),
    ("online(bench)", 19, "expected a unit id in quotes"),
    ("'open", 12, "never closed"),
    ("'a\\qb'", 14, "unknown escape"),
    ("(1 + 2", 18, "expected ')' to close the '(' at column 12"),
    ("1 2", 14, "expected an operator or the end, got '2'"),
    ("True", 12, "booleans are written true and false"),
    ("bench-1/DO1.mg_l", 12, "lower case"),
    ("do € 2", 15, "unexpected character '€' (U+20AC)"),
    ("'a\x07'", 14, "control character U+0007"),
    ("'a\ud800'", 14, "lone surrogate"),
    ("1" * 41, 12, "at most 40"),
    ("99999999999999999999", 12, "whole number too large"),
    ("1e999", 12, "too large for a number"),
    ("", 12, "got nothing"),
    ("min", 12, "min is a function"),
    ("(" * 100 + "1" + ")" * 100, 12 + 64, "nests deeper than 64"),
])
def test_syntax_errors_name_the_exact_column(text: str, column: int, message: str) -> None:
    line, col, got = error(text)
    assert (line, col) == (7, column)
    assert message in got


def test_errors_on_a_later_line_of_a_multiline_value() -> None:
    assert error("1 +\n  * 2")[:2] == (8, 3)


def test_static_types_catch_a_number_used_as_a_condition() -> None:
    types = {"bench-1/do1.mg_l": "number", "mode": "string"}
    expr = parse_expression("bench-1/do1.mg_l and true", AT)
    with pytest.raises(ExpressionError) as info:
        expr.infer(lambda n: types.get(n, "any"))  # type: ignore[arg-type, return-value]
    assert info.value.problem.column == 12 and "and expects true or false" in info.value.problem.message
    ok = parse_expression("mode == 'run' and bench-1/do1.mg_l > 2", AT)
    assert ok.infer(lambda n: types.get(n, "any")) == "boolean"  # type: ignore[arg-type, return-value]
    with pytest.raises(ExpressionError, match="compares two numbers or two strings"):
        parse_expression("mode < 3", AT).infer(lambda n: types.get(n, "any"))  # type: ignore[arg-type, return-value]


def test_templates_mix_text_and_formatted_values() -> None:
    parts = parse_template("OUR {cycles * 1.23456:.2f} mg/L/h {{cycle}} at {do_high}, {mode}", AT)
    assert render_parts(parts, Env()) == "OUR 2.47 mg/L/h {cycle} at 7, run"
    with pytest.raises(ExpressionError) as info:
        parse_template("value {1 +} here", AT)
    assert info.value.problem.column == 12 + 10
    with pytest.raises(ExpressionError, match="without its '}'"):
        parse_template("value {x", AT)
    with pytest.raises(ExpressionError, match="format 'zz'"):
        parse_template("{x:zz}", AT)


class NoEnv(Env):
    def lookup(self, name: str) -> Value:
        return {"t": 1.0}.get(name, 1.5)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_random_text_raises_only_expression_errors(text: str) -> None:
    try:
        expr = parse_expression(text, AT)
    except ExpressionError:
        return
    try:
        expr.evaluate(NoEnv())
    except EvaluationError:
        pass


_ATOMS = st.sampled_from(["1", "0", "2.5", "1e308", "9223372036854775807", "-3", "true", "'s'", "x",
                          "bench-1/do1.mg_l", "t", "30s", "age(x)", "stale(x)", "online('u')"])


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 4 or draw(st.booleans()):
        return draw(_ATOMS)
    op = draw(st.sampled_from(["+", "-", "*", "/", "%", "**", "<", "==", "and", "or"]))
    left, right = draw(expressions(depth + 1)), draw(expressions(depth + 1))
    if draw(st.booleans()):
        return f"({left} {op} {right})"
    fn = draw(st.sampled_from(["abs", "round", "not", "-"]))
    return f"{fn}({left} {op} {right})" if fn in ("abs", "round") else f"{fn} ({left} {op} {right})"


@settings(max_examples=400, deadline=None)
@given(expressions())
def test_random_expressions_evaluate_or_raise_evaluation_errors(text: str) -> None:
    expr = parse_expression(text, AT)
    try:
        result = expr.evaluate(NoEnv())
    except EvaluationError:
        return
    if isinstance(result, float):
        assert math.isfinite(result)
    if isinstance(result, int) and not isinstance(result, bool):
        assert abs(result) < 2**63
