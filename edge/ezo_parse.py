"""Pure parsing of the EZO UART dialect (docs/ezo.md).

Lines arrive here already split on `\\r` and decoded; nothing in this module
does I/O. A line is a response code (`*OK`), a query answer (`?i,pH,2.16`),
data (`7.012`, `8.42,95.1`) or garbage; a reading is data that parses for
the probe and is not the RTD's "no probe" value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from edge.line_parse import ReadingInvalid, parse_number, shown
from lecis.errors import SettingInvalid

__all__ = [
    "DEVICE_TYPES",
    "DO_OUTPUT_ORDER",
    "EzoLine",
    "LineKind",
    "NO_PROBE",
    "RESPONSE_CODES",
    "ReadingInvalid",
    "classify",
    "parse_info",
    "parse_reading",
    "reading_names",
]

RESPONSE_CODES = {
    "*OK": "command done",
    "*ER": "unknown command or bad argument",
    "*OV": "over voltage",
    "*UV": "under voltage",
    "*RS": "reset",
    "*RE": "boot complete",
    "*SL": "going to sleep",
    "*WA": "woke up",
}

#: What `i` answers for each DCD probe.
DEVICE_TYPES = {"ph": "pH", "do": "D.O.", "rtd": "RTD"}

#: The DO circuit always sends mg/L before % saturation, whichever are on.
DO_OUTPUT_ORDER = (("mg", "do_mg"), ("%", "do_sat"))

#: What the RTD circuit reads with no probe attached.
NO_PROBE = -1023.0

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class LineKind(Enum):
    CODE = "code"
    ANSWER = "answer"
    DATA = "data"
    GARBAGE = "garbage"


@dataclass(frozen=True)
class EzoLine:
    """One classified line. `code` (upper case) is set for CODE lines, and for GARBAGE
    that ends in a response code (`\x05\x91*OK`, `7.0*OK`): line noise glued to a code."""

    kind: LineKind
    text: str
    code: str | None = None


def _printable(text: str) -> bool:
    return bool(text) and all(" " <= c <= "~" for c in text)


def classify(line: str) -> EzoLine:
    """Sort one line: response code, query answer, data, or garbage (noise, control bytes, unknown code)."""
    text = line.strip()
    upper = text.upper()
    if upper in RESPONSE_CODES:
        return EzoLine(LineKind.CODE, text, upper)
    glued = next((code for code in RESPONSE_CODES if upper.endswith(code)), None)
    if glued is not None or not _printable(text) or text.startswith("*"):
        return EzoLine(LineKind.GARBAGE, line, glued)
    if text.startswith("?"):
        return EzoLine(LineKind.ANSWER, text)
    return EzoLine(LineKind.DATA, text)


def parse_info(line: str) -> tuple[str, str]:
    """(device type, firmware) from an `i` answer such as `?i,pH,2.16`."""
    parts = line.strip().split(",")
    if len(parts) != 3 or parts[0].upper() != "?I" or not parts[1]:
        raise ReadingInvalid("bad_data", f"{shown(line)} is not an answer to 'i' such as '?i,pH,2.16'")
    return parts[1], parts[2]


def reading_names(probe: str, do_outputs: Sequence[str] = ("mg", "%")) -> tuple[str, ...]:
    """Reading names a data line carries, in the order the circuit sends them."""
    if probe == "ph":
        return ("ph",)
    if probe == "rtd":
        return ("temp",)
    if probe == "do":
        return tuple(name for output, name in DO_OUTPUT_ORDER if output in do_outputs)
    raise SettingInvalid(f"unknown EZO probe {probe!r}; expected one of {', '.join(DEVICE_TYPES)}")


def parse_reading(
    probe: str, lines: Sequence[str], do_outputs: Sequence[str] = ("mg", "%")
) -> dict[str, float]:
    """Values of the answer to `R` (data lines, without `*OK`) for `probe`.

    Raises ReadingInvalid with code `bad_data` (no line, several lines,
    garbage, wrong count of fields) or `no_probe` (RTD `-1023.000`).
    """
    if len(lines) != 1:
        seen = ", ".join(shown(line) for line in lines[:3]) or "nothing"
        raise ReadingInvalid("bad_data", f"expected one reading line, got {seen}")
    line = lines[0]
    if classify(line).kind is not LineKind.DATA:
        raise ReadingInvalid("bad_data", f"{shown(line)} is not a reading")
    names = reading_names(probe, do_outputs)
    fields = line.strip().split(",")
    if len(fields) != len(names):
        raise ReadingInvalid(
            "bad_data",
            f"{shown(line)} holds {len(fields)} value(s) where {len(names)} ({', '.join(names)}) "
            "were expected",
        )
    values: dict[str, float] = {}
    for name, text in zip(names, fields, strict=True):
        if not _NUMBER.fullmatch(text):
            raise ReadingInvalid("bad_data", f"{shown(text)} in {shown(line)} is not a number")
        values[name] = parse_number(text, line)
    if probe == "rtd" and values["temp"] == NO_PROBE:
        raise ReadingInvalid(
            "no_probe", f"{line.strip()} means no temperature probe is attached; check its plug"
        )
    return values
