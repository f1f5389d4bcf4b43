"""Pure text handling for serial instruments: DCD patterns to readings, commands to wire text.

A DCD regex with named groups turns a line into readings; a command's `wire`
template and validated arguments turn into the text to send. No I/O here.
The same `ReadingInvalid` error serves the EZO parser (`edge.ezo_parse`),
so both drivers turn a bad line into an event the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from lecis.dcd import CommandSpec, ReadingSpec
from lecis.errors import CommandFailed, LabedgeError

SHOWN_CHARS = 48


class ReadingInvalid(LabedgeError, ValueError):
    """A line that must not become a reading; `code` is the event code to report it with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """`repr` of what the device sent, cut short so an event message stays readable."""
    quoted = repr(text)
    if len(quoted) <= limit:
        return quoted
    return quoted[:limit] + f"... ({len(text)} chars)"


class PatternInvalid(LabedgeError, ValueError):
    """A DCD `pattern` that cannot name the readings."""


def compile_pattern(pattern: str, readings: Iterable[ReadingSpec] = ()) -> re.Pattern[str]:
    """Compile a DCD `pattern`; every named group must be a declared reading, if any are declared.

    Raises PatternInvalid (a ValueError) with a message naming the pattern.
    """
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise PatternInvalid(f"pattern {pattern!r} is not a valid regular expression: {exc}") from exc
    groups = set(compiled.groupindex)
    if not groups:
        raise PatternInvalid(f"pattern {pattern!r} has no named group such as (?P<turbidity>[0-9.]+)")
    names = {spec.name for spec in readings}
    extra = sorted(groups - names) if names else []
    if extra:
        raise PatternInvalid(
            f"pattern {pattern!r} names {', '.join(extra)}, which the DCD does not declare as readings "
            f"(declared: {', '.join(sorted(names))})"
        )
    return compiled


def parse_number(text: str, line: str) -> float:
    """A finite float from `text`, else ReadingInvalid('bad_data') naming the whole line."""
    try:
        value = float(text)
    except ValueError:
        raise ReadingInvalid("bad_data", f"{shown(text)} in line {shown(line)} is not a number") from None
    if not math.isfinite(value):
        raise ReadingInvalid("bad_data", f"{shown(text)} in line {shown(line)} is not a finite number")
    return value


def parse_line(pattern: re.Pattern[str], line: str) -> dict[str, float]:
    """Values of the named groups of `pattern` found in the line (searched, as grep would).

    Anchor the pattern (`^...$`) to require the whole line. Groups that did
    not take part in the match (optional parts) are left out.
    """
    match = pattern.search(line.strip())
    if match is None:
        raise ReadingInvalid("bad_data", f"line {shown(line)} does not match the pattern {pattern.pattern!r}")
    values = {
        name: parse_number(text, line) for name, text in match.groupdict().items() if text is not None
    }
    if not values:
        raise ReadingInvalid("bad_data", f"line {shown(line)} matched but held none of the readings")
    return values


def check_range(values: Mapping[str, float], readings: Iterable[ReadingSpec]) -> None:
    """Raise ReadingInvalid('out_of_range') for the first value outside its ReadingSpec range."""
    specs = {spec.name: spec for spec in readings}
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            continue
        low, high = spec.minimum, spec.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"{'-inf' if low is None else f'{low:g}'} to {'inf' if high is None else f'{high:g}'}"
            raise ReadingInvalid(
                "out_of_range",
                f"{name} = {value:g} {spec.unit} is outside its plausible range {span} {spec.unit}; "
                "check the probe and its calibration",
            )


def render_wire(spec: CommandSpec, args: Mapping[str, Any]) -> str:
    """The text a device command puts on the wire: its `wire` template filled from validated args.

    Raises CommandFailed when the DCD gives no template, the template names a
    parameter that was not given, or the result would hold a line break.
    """
    if spec.wire is None:
        raise CommandFailed(f"command {spec.name!r} has no `wire` text in its DCD, so it cannot be sent")
    try:
        text = spec.wire.format(**args)
    except (KeyError, IndexError, ValueError) as exc:
        raise CommandFailed(
            f"command {spec.name!r}: cannot fill its wire text {spec.wire!r}: {exc!r}"
        ) from exc
    if any(c in text for c in "\r\n"):
        raise CommandFailed(f"command {spec.name!r}: its wire text {shown(text)} would hold a line break")
    return text


def answer_matches(expect: str | None, lines: Iterable[str]) -> bool:
    """True when no `expect` is set or some answer line contains a match of it."""
    if expect is None:
        return True
    pattern = re.compile(expect)
    return any(pattern.search(line) for line in lines)
