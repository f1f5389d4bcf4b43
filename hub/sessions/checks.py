"""Checks of what a person or a tool sends the session log: unit ids, names, users."""

from __future__ import annotations

import unicodedata
from typing import Any

from lecis.errors import CommandRejected, ErrorKind
from lecis.topics import UNIT_ID, reserved_unit_id

MAX_EXPERIMENT_CHARS = 200
MAX_USER_CHARS = 100
JOINERS = frozenset("\u200c\u200d")


def invalid(message: str, param: str) -> CommandRejected:
    return CommandRejected(ErrorKind.VALIDATION, message, param)


def check_text(value: Any, param: str, limit: int) -> str | None:
    """None, or a printable one-line string of 1..limit characters; CommandRejected naming `param`."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{param} must be a string, got {type(value).__name__}", param)
    text = value.strip()
    if not text or len(text) > limit:
        raise invalid(f"{param} must be 1 to {limit} characters, got {len(value)}", param)
    for char in text:
        category = unicodedata.category(char)
        # Cf: bidi overrides and other invisible format characters (which can disguise a name); the
        # joiners of emoji and some scripts are fine.
        if category in ("Cc", "Cs", "Cn", "Co") or (category == "Cf" and char not in JOINERS):
            raise invalid(f"{param} holds a control, format, unassigned or lone surrogate character "
                           f"(U+{ord(char):04X}); use printable text on one line", param)
    return text


def check_unit(value: Any, known: set[str] | None, param: str = "unit") -> str:
    """A unit id (of a known unit, unless `known` is None); CommandRejected naming `param`."""
    if not isinstance(value, str):
        raise invalid(f"{param} must be a unit id (a string), got {type(value).__name__}", param)
    if UNIT_ID.match(value) is None:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise invalid(f"{param} {shown!r} is not a unit id (lower-case letters, digits and -, up to 32 "
                       "characters)", param)
    reserved = reserved_unit_id(value)
    if reserved is not None:
        raise invalid(reserved, param)
    if known is not None and value not in known:
        names = ", ".join(sorted(known)[:20]) or "none yet"
        raise invalid(f"unit {value} is not known to this hub (known: {names}); a unit is known once its "
                       "$birth has been seen, or when the script or watch: of hub.yaml names it", param)
    return value
