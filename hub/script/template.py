"""Log messages with expressions inside: `"OUR {our:.1f} mg/L/h in cycle {cycles}"` (pure).

`{expr}` or `{expr:spec}` with a small format spec (`.2f`, `8.3g`, `.0%`, `d`);
`{{` and `}}` are literal braces. Parts are literal text and expressions; an
expression with a spec is a Formatted, whose value is already text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from hub.script.errors import EvaluationError, ExpressionError, ScriptProblem
from hub.script.expr import Locate, ParsedExpression, parse_expression, position_at
from hub.script.lexer import bad_character
from hub.script.model import Environment, Expression, Position, Value
from hub.script.nodes import describe

_SPEC = re.compile(r"[<>^]?\d{0,3}(?:\.\d{1,2})?[fged%]?", re.ASCII)
MAX_CHARS = 2000


@dataclass(unsafe_hash=True)
class Formatted:
    """An expression shown with a format spec; evaluates to the text."""

    text: str
    position: Position
    inner: ParsedExpression
    spec: str

    @property
    def names(self) -> frozenset[str]:
        return self.inner.names

    @property
    def timed(self) -> bool:
        return self.inner.timed

    def evaluate(self, env: Environment) -> Value:
        value = self.inner.evaluate(env)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return render(value)
        if self.spec.endswith("d"):
            value = round(value)
        try:
            return format(value, self.spec)
        except ValueError:
            raise EvaluationError(f"format {self.spec!r} does not fit {describe(value)}") from None


def render(value: Value) -> str:
    """A value as the log shows it: true/false, 6 significant digits, strings as they are."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render_parts(parts: Iterable[str | Expression], env: Environment) -> str:
    """The message of a Log action now; raises EvaluationError when a value is missing."""
    return "".join(p if isinstance(p, str) else render(p.evaluate(env)) for p in parts)


def parse_template(text: str, position: Position, locate: Locate | None = None
                   ) -> tuple[str | Expression, ...]:
    """Literal text and expressions of `text` written at `position`; raises ExpressionError."""
    where: Locate = locate or (lambda offset: position_at(position, text, offset))

    def fail(offset: int, message: str) -> ExpressionError:
        at = where(offset)
        return ExpressionError(ScriptProblem(at.file, at.line, at.column, message))

    if len(text) > MAX_CHARS:
        raise fail(0, f"a message of {len(text)} characters; at most {MAX_CHARS}")
    for offset, ch in enumerate(text):
        why = bad_character(ch)
        if why is not None:
            raise fail(offset, why)
    parts: list[str | Expression] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "{}" and text.startswith(ch * 2, i):
            literal.append(ch)
            i += 2
            continue
        if ch == "}":
            raise fail(i, "a '}' without its '{'; write }} for a literal brace")
        if ch != "{":
            literal.append(ch)
            i += 1
            continue
        end = _closing(text, i + 1)
        if end is None:
            raise fail(i, "a '{' without its '}'; write {{ for a literal brace")
        inside = text[i + 1:end]
        expr_text, spec = inside, ""
        colon = _top_level_colon(inside)
        if colon is not None:
            expr_text, spec = inside[:colon], inside[colon + 1:]
            if not _SPEC.fullmatch(spec):
                raise fail(i + 1 + colon + 1, f"format {spec!r} is not one of: .2f, 8.3g, .0%, d")
        if literal:
            parts.append("".join(literal))
            literal = []
        parsed = parse_expression(expr_text, where(i + 1), _shifted(where, i + 1))
        parts.append(Formatted(parsed.text, parsed.position, parsed, spec) if spec else parsed)
        i = end + 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _shifted(where: Locate, start: int) -> Locate:
    return lambda offset: where(start + offset)


def _first_unquoted(text: str, start: int, marks: str) -> int | None:
    """Offset of the first character of `marks` at or after `start` that is outside quotes."""
    quote = None
    for j in range(start, len(text)):
        ch = text[j]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in marks:
            return j
    return None


def _closing(text: str, start: int) -> int | None:
    """Offset of the `}` closing an expression that starts at `start`; quotes respected."""
    j = _first_unquoted(text, start, "{}")
    return j if j is not None and text[j] == "}" else None


def _top_level_colon(inside: str) -> int | None:
    return _first_unquoted(inside, 0, ":")
