"""Tokens of the expression language (pure): numbers, durations, strings, names, operators.

A reading name `bench-1/do1.mg_l` is matched before anything else, so the
dash inside a unit id is never read as a minus: `bench-1/do1.mg_l - 2` is a
name minus 2. The price is that `a/b` without spaces is always a name;
division between two variables is written `a / b`. A slash whose left part
is a number or duration (`10/4`, `30s/2`) stays a division.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from hub.script.durations import parse_duration

TokenKind = Literal["number", "string", "ref", "ident", "op", "end"]
MAX_INT = 2**63 - 1  # whole numbers beyond 64 bits are typing slips
MAX_NUMBER_CHARS = 40

_REF = re.compile(r"[a-z0-9][a-z0-9-]*/[a-z0-9_]+(?:\.[a-z0-9_]+)?(?![A-Za-z0-9_.])", re.ASCII)
_REF_UPPER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?", re.ASCII)
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[dhms])+", re.ASCII)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_WORD_TAIL = re.compile(r"[A-Za-z0-9_]+", re.ASCII)
_OPS = ("**", "<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",")
_HINTS = {"&&": "use 'and'", "||": "use 'or'", "&": "use 'and'", "|": "use 'or'", "!": "use 'not'",
          "=": "use '==' to compare; variables are changed with a `set` action", "^": "use '**' for a power"}
_DIGITS = "0123456789"
KEYWORDS = frozenset({"and", "or", "not", "true", "false"})


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    start: int  # offset in the expression text
    value: object = None  # number (int | float) or decoded string


class LexError(Exception):
    """Internal: a bad character at `offset`; the parser turns it into an ExpressionError."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


def bad_character(ch: str) -> str | None:
    """Why `ch` may not appear in a script at all (control characters, lone surrogates), else None."""
    category = unicodedata.category(ch)
    if category == "Cs":
        return f"character U+{ord(ch):04X} is a lone surrogate, not text"
    if category == "Cc" and ch not in "\t\n":
        return f"control character U+{ord(ch):04X} is not allowed"
    return None


def _is_numeric(word: str) -> bool:
    return bool(_NUMBER.fullmatch(word) or _DURATION.fullmatch(word))


def tokenize(text: str) -> list[Token]:
    """Every token of `text`, ending with an `end` token; raises LexError at the first bad character."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\n\r":
            i += 1
            continue
        why = bad_character(ch)
        if why is not None:
            raise LexError(i, why)
        m = _REF.match(text, i)
        if m and not _is_numeric(m.group().split("/", 1)[0]):
            tokens.append(Token("ref", m.group(), i))
            i = m.end()
            continue
        m = _REF_UPPER.match(text, i)
        if m and "/" in m.group() and not _is_numeric(m.group().split("/", 1)[0]) \
                and m.group() != m.group().lower() and (ch.islower() or ch in _DIGITS):
            raise LexError(i, f"{m.group()!r}: unit, module and reading names are lower case")
        if ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):
            tokens.append(_number(text, i))
            i += len(tokens[-1].text)
            continue
        if ch in "\"'":
            token = _string(text, i)
            tokens.append(token)
            i += len(token.text)
            continue
        m = _IDENT.match(text, i)
        if m:
            tokens.append(Token("ident", m.group(), i))
            i = m.end()
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token("op", op, i))
            i += len(op)
            continue
        hint = next((h for k, h in _HINTS.items() if text.startswith(k, i)), None)
        if hint is not None:
            raise LexError(i, f"unexpected {ch!r}; {hint}")
        raise LexError(i, f"unexpected character {ch!r}" + ("" if ch.isascii() else f" (U+{ord(ch):04X})"))
    tokens.append(Token("end", "", n))
    return tokens


def _number(text: str, i: int) -> Token:
    duration = _DURATION.match(text, i)
    number = _NUMBER.match(text, i)
    assert number is not None  # the caller saw a digit, or a dot before one
    tail = _WORD_TAIL.match(text, number.end())
    if duration and duration.end() >= number.end() and not _WORD_TAIL.match(text, duration.end()):
        word = duration.group()
        seconds = parse_duration(word)
        if seconds is None:
            raise LexError(i, f"{word!r} is not a duration; give units from large to small, each once "
                              "(30s, 5m, 2h, 1h30m, 1d)")
        return Token("number", word, i, seconds)
    word = number.group()
    if tail:
        shown = text[i:tail.end()][:40]
        raise LexError(i, f"{shown!r} is not a number or duration (durations: 30s, 5m, 2h, 1h30m)")
    if len(word) > MAX_NUMBER_CHARS:
        raise LexError(i, f"a number of {len(word)} characters; numbers here have at most "
                          f"{MAX_NUMBER_CHARS}")
    convert: Callable[[str], float | int] = float if any(c in word for c in ".eE") else int
    value = convert(word)
    if isinstance(value, int) and value > MAX_INT:
        raise LexError(i, f"whole number too large; whole numbers here are from -{MAX_INT} to {MAX_INT} "
                          "(write 1e20 for a large decimal)")
    if isinstance(value, float) and value == float("inf"):
        raise LexError(i, f"{word!r} is too large for a number")
    return Token("number", word, i, value)


_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


def _string(text: str, i: int) -> Token:
    quote = text[i]
    out: list[str] = []
    j = i + 1
    while j < len(text):
        ch = text[j]
        why = bad_character(ch)
        if why is not None or ch == "\n":
            raise LexError(j, why or "a string must end on the line it starts")
        if ch == quote:
            return Token("string", text[i:j + 1], i, "".join(out))
        if ch == "\\":
            nxt = text[j + 1] if j + 1 < len(text) else ""
            if nxt not in _ESCAPES:
                raise LexError(j, "unknown escape in a string; write \\\\, \\\", \\', \\n or \\t")
            out.append(_ESCAPES[nxt])
            j += 2
            continue
        out.append(ch)
        j += 1
    raise LexError(i, f"a string opened with {quote} is never closed")
