"""Durations as a scientist writes them: `30s`, `5m`, `2h`, `1h30m`, `1d`, `1.5h` -> seconds."""

from __future__ import annotations

import math
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])", re.ASCII)
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?[dhms])+", re.ASCII)
_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_ORDER = "dhms"
MAX_SECONDS = 10 * 365 * 86400.0  # ten years: anything longer is a typing slip
# The shortest period of a task (every:), a pid loop, a signal's window and stale_after: the hub acts on a
# timescale of seconds; one of microseconds would flood the controller and the recorder.
MIN_PERIOD_S = 1.0
EXPECTED = "a duration such as 30s, 5m, 2h, 1h30m or a number of seconds"


def parse_duration(text: str) -> float | None:
    """Seconds, or None when `text` is no duration (units out of order or repeated, too long)."""
    if len(text) > 40 or not _WHOLE.fullmatch(text):
        return None
    total, last = 0.0, -1
    for amount, unit in _PART.findall(text):
        rank = _ORDER.index(unit)
        if rank <= last:
            return None
        last = rank
        total += float(amount) * _SECONDS[unit]
    return total if math.isfinite(total) and total <= MAX_SECONDS else None


def duration_value(value: object) -> float | None:
    """A YAML value as seconds: a duration string or a plain non-negative number; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
        return seconds if math.isfinite(seconds) and 0 <= seconds <= MAX_SECONDS else None
    if isinstance(value, str):
        return parse_duration(value.strip())
    return None


def format_duration(seconds: float) -> str:
    """`5400` -> `1h30m`; the inverse of parse_duration for whole seconds."""
    if seconds != int(seconds) or seconds < 0:
        return f"{seconds:g}s"
    rest, out = int(seconds), ""
    for unit in _ORDER:
        size = int(_SECONDS[unit])
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"
