"""Typed reads from a script's YAML that collect problems at file:line:column instead of stopping.

Every read names the path it reads; a problem points at the key (a missing
or unknown key) or at the first character of the value (a wrong value). A
read that fails returns its default, so checking goes on and the user sees
every problem of the file at once.
"""

from __future__ import annotations

import bisect
import difflib
import math
import re
from collections.abc import Callable, Collection, Iterable
from typing import Any

from hub.script.durations import EXPECTED as DURATION_EXPECTED
from hub.script.durations import duration_value, format_duration
from hub.script.errors import ScriptProblem
from hub.script.model import Position
from lecis.yaml_loader import MISSING, YamlDoc, YPath, describe

NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}\Z", re.ASCII)
NAME_RULE = "a name of lower-case letters, digits and _ starting with a letter (e.g. do_high)"


def did_you_mean(word: str, known: Iterable[str], what: str) -> str:
    """"; did you mean 'x'?" or "; the known WHAT are a, b" (nothing when none are known)."""
    options = sorted(set(known))
    if not options:
        return f"; there are no {what}"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    shown = ", ".join(options[:12]) + (", ..." if len(options) > 12 else "")
    return f"; the {what} are: {shown}"


class Reader:
    """Reads of one YAML document; `problems` collects what is wrong, in any order."""

    def __init__(self, doc: YamlDoc, text: str) -> None:
        self.doc = doc
        self.source = doc.source
        self.text = text
        self.lines = text.split("\n")
        self.line_starts = [0]
        for line in self.lines[:-1]:
            self.line_starts.append(self.line_starts[-1] + len(line) + 1)
        self.problems: list[ScriptProblem] = []

    # --- positions and problems ---------------------------------------------------------------
    def at(self, path: YPath) -> Position:
        """Where the key (or list item) `path` is written, or its nearest parent."""
        found = self.doc.position_of(path)
        line, column = found if found else (1, 1)
        return Position(self.source, line, column)

    def value_at(self, path: YPath) -> Position:
        """Where the first character of the value at `path` is written."""
        found = self.doc.value_position(path)
        line, column = found if found else (1, 1)
        return Position(self.source, line, column)

    def fail_at(self, where: Position, message: str) -> None:
        self.problems.append(ScriptProblem(where.file, where.line, where.column, message))

    def fail(self, path: YPath, message: str, *, value: bool = False) -> None:
        """A problem at the key `path` (or at its value's first character)."""
        if path in self.doc.refused:
            return  # reported while loading; one problem per mistake
        self.fail_at(self.value_at(path) if value else self.at(path), message)

    def locator(self, path: YPath, value: str) -> Callable[[int], Position] | None:
        """Offset in the scalar `value` at `path` -> where that character is written.

        Follows the YAML source through folded lines, block indentation,
        escapes and doubled quotes; None when the value cannot be aligned
        with its source (then offsets are counted from its start).
        """
        start = self.doc.values.get(path)
        if start is None or not 1 <= start[0] <= len(self.lines):
            return None
        offsets = _align(self.text, self.line_starts[start[0] - 1] + start[1] - 1, value)
        if offsets is None:
            return None

        def locate(offset: int) -> Position:
            index = offsets[offset] if offset < len(offsets) else \
                (offsets[-1] + 1 + offset - len(offsets) if offsets else self.line_starts[start[0] - 1])
            line = bisect.bisect_right(self.line_starts, index)
            return Position(self.source, line, index - self.line_starts[line - 1] + 1)
        return locate

    def column_of_word(self, line: int | None, word: str) -> int | None:
        """Column of `word` on `line` (for loader problems that only know the line)."""
        if line is None or not 1 <= line <= len(self.lines):
            return None
        found = self.lines[line - 1].find(word)
        return found + 1 if found >= 0 else None

    # --- values -------------------------------------------------------------------------------
    def get(self, path: YPath) -> Any:
        return self.doc.get(path)

    def has(self, path: YPath) -> bool:
        return self.doc.get(path) is not MISSING

    def mapping(self, path: YPath, allowed: Collection[str] | None = None, *, required: bool = False,
                what: str = "a mapping of key: value") -> dict[str, Any] | None:
        value = self.get(path)
        if value is MISSING:
            if required:
                self.fail(path, f"missing; expected {what}")
            return None
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"expected {what}, got {describe(value)}", value=True)
            return None
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    self.fail(path + (key,), f"unknown key {key!r}" + did_you_mean(key, allowed, "keys here"))
        return value

    def items(self, path: YPath, what: str) -> list[Any] | None:
        """A list (a single item is taken as a list of one)."""
        value = self.get(path)
        if value is MISSING or value is None:
            return None
        return value if isinstance(value, list) else [value]

    def duration(self, path: YPath, default: float | None, *, required: bool = False,
                 positive: bool = False, nullable: bool = False, minimum: float | None = None,
                 zero: bool = False) -> float | None:
        """Seconds at `path`; `minimum`: the shortest allowed (0 too when `zero`), see MIN_PERIOD_S."""
        value = self.get(path)
        expected = DURATION_EXPECTED + (" (above 0)" if positive else "") + (" or null" if nullable else "")
        if value is MISSING:
            if required:
                self.fail(path, f"missing; expected {expected}")
            return default
        if value is None and nullable:
            return None
        seconds = duration_value(value)
        if seconds is None or (positive and seconds <= 0):
            hint = ""
            if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*(sec|secs|min|mins|hr|hrs|hours?|"
                                                        r"minutes?|seconds?|days?)\s*", value, re.ASCII):
                hint = " (units are written s, m, h, d: 30s, 5m, 2h)"
            self.fail(path, f"expected {expected}, got {describe(value)}{hint}", value=True)
            return default
        if minimum is not None and seconds < minimum and not (zero and seconds == 0):
            self.fail(path, f"{path[-1]} must be at least {format_duration(minimum)}"
                            + (" (or 0)" if zero else "") + f", got {describe(value)}: the hub acts on a "
                            "timescale of seconds, and a shorter one would only flood it", value=True)
            return default
        return seconds

    def number(self, path: YPath, default: float | None, *, required: bool = False,
               minimum: float | None = None, above: float | None = None) -> float | None:
        value = self.get(path)
        expected = "a number" + (f" of at least {minimum:g}" if minimum is not None else "") + \
            (f" above {above:g}" if above is not None else "")
        if value is MISSING:
            if required:
                self.fail(path, f"missing; expected {expected}")
            return default
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (minimum is not None and value < minimum) or (above is not None and value <= above):
            hint = " (put no quotes around numbers)" if isinstance(value, str) and _is_number(value) else ""
            self.fail(path, f"expected {expected}, got {describe(value)}{hint}", value=True)
            return default
        return float(value)

    def string(self, path: YPath, default: str | None, *, required: bool = False,
               choices: Collection[str] | None = None, pattern: re.Pattern[str] | None = None,
               expected: str = "a string") -> str | None:
        value = self.get(path)
        if choices is not None:
            expected = "one of " + ", ".join(choices)
        if value is MISSING:
            if required:
                self.fail(path, f"missing; expected {expected}")
            return default
        if not isinstance(value, str) or not value.strip():
            self.fail(path, f"expected {expected}, got {describe(value) if value != '' else 'nothing'}",
                      value=True)
            return default
        if choices is not None and value not in choices:
            hint = did_you_mean(value, choices, "choices").replace("; the choices are", "; choose from")
            self.fail(path, f"expected {expected}, got {describe(value)}{hint}", value=True)
            return default
        if pattern is not None and not pattern.match(value):
            self.fail(path, f"expected {expected}, got {describe(value)}", value=True)
            return default
        return value


def _align(source: str, i: int, value: str) -> list[int] | None:
    """The source index of each character of `value`, read from `source[i]` on; None if they differ."""
    offsets: list[int] = []
    for k, ch in enumerate(value):
        while True:
            if i >= len(source):
                return None
            got = source[i]
            if ch == "'" and source.startswith("''", i) and value[k + 1: k + 2] != "'":
                offsets.append(i)  # '' in a single-quoted value stands for one quote
                i += 2
                break
            if got == ch and got != "\\":
                offsets.append(i)
                i += 1
                break
            if got == "\\":  # a double-quoted escape stands for one character
                nxt = source[i + 1: i + 2]
                offsets.append(i)
                i += {"x": 4, "u": 6, "U": 10}.get(nxt, 2)
                break
            if got in " \t\r\n":  # a folded line break, or the indentation of a block's next line
                j = i
                while j < len(source) and source[j] in " \t\r\n":
                    j += 1
                if ch in " \n":
                    offsets.append(i)
                    i = j
                    break
                i = j
                continue
            return None
    return offsets


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
