"""Commands and replies on the wire: parsing (pure) and building."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from lecis.errors import CommandInvalid, WireFormatError

MAX_ID_LENGTH = 128
MAX_PAYLOAD_BYTES = 64 * 1024


class ReplyStatus(str, Enum):
    ACCEPTED = "accepted"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"


FINAL_STATUSES = frozenset({ReplyStatus.DONE, ReplyStatus.FAILED, ReplyStatus.REJECTED})
# The same as the strings of a decoded reply (an Enum member hashes by name, not by value).
FINAL_STATUS_VALUES = frozenset(status.value for status in FINAL_STATUSES)


@dataclass(frozen=True)
class Command:
    id: str
    cmd: str
    args: dict[str, Any] = field(default_factory=dict)
    lease: str | None = None


class CommandPayloadInvalid(CommandInvalid):
    """A payload that is not a command at all; `command_id` is what could be read of its id."""

    def __init__(self, message: str, param: str | None = None, command_id: str | None = None) -> None:
        super().__init__(message, param)
        self.command_id = command_id


def encodable(text: str) -> bool:
    """True if `text` can be written as UTF-8 (JSON's `\\ud800` escapes yield lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _holds_unencodable(value: Any) -> bool:
    """True if any string in `value`, keys included, cannot be encoded (a stack: nesting may be deep)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not encodable(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _first_unencodable(obj: dict[str, Any]) -> tuple[str | None, str] | None:
    """(param, what) for the first field of `obj` holding a string that cannot be sent as UTF-8.

    `param` is the top-level field, or under `args` the argument's name; never the bad string.
    """
    for key, value in obj.items():
        if not encodable(key):
            return None, "a field name"
        if key == "args" and isinstance(value, dict):
            for name, arg in value.items():
                if not encodable(name):
                    return "args", "an argument name"
                if _holds_unencodable(arg):
                    return name if name.strip() else "args", f"argument {name!r}"
        elif _holds_unencodable(value):
            return key, f"field {key!r}"
    return None


def parse_command(payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Command:
    """Parse a `cmd` payload; raises CommandPayloadInvalid saying what is wrong.

    Nothing here evaluates anything: JSON in, a frozen dataclass out.
    NaN and Infinity are refused because they are not JSON. `max_bytes`: a unit's
    commands stay under 64 KiB; the hub's (a whole script) take a larger limit.
    """
    from lecis.wire.jsonbytes import from_bytes  # imported here: lecis.wire imports this module

    try:
        obj = from_bytes(payload, max_bytes=max_bytes)
    except WireFormatError as exc:
        raise CommandPayloadInvalid(str(exc)) from None
    if not isinstance(obj, dict):
        raise CommandPayloadInvalid(f"payload must be a JSON object, got {type(obj).__name__}")
    raw_id = obj.get("id")
    if not isinstance(raw_id, str) or not raw_id or len(raw_id) > MAX_ID_LENGTH or not encodable(raw_id):
        raise CommandPayloadInvalid(
            f"'id' must be a non-empty UTF-8 string of at most {MAX_ID_LENGTH} characters", "id"
        )
    bad = _first_unencodable(obj)
    if bad is not None:
        param, where = bad
        raise CommandPayloadInvalid(
            f"{where} holds text that cannot be encoded as UTF-8 (a lone surrogate such as \\ud800); "
            "send valid Unicode text", param, raw_id)
    cmd = obj.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        raise CommandPayloadInvalid("'cmd' must be a non-empty string", "cmd", raw_id)
    args = obj.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise CommandPayloadInvalid("'args' must be a JSON object", "args", raw_id)
    lease = obj.get("lease")
    if lease is not None and not isinstance(lease, str):
        raise CommandPayloadInvalid("'lease' must be a string token", "lease", raw_id)
    return Command(id=raw_id, cmd=cmd, args=args, lease=lease)


def is_finite_number(value: Any) -> bool:
    """A JSON number that is finite and fits a float (a 400-digit integer does not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def command_payload(command: Command) -> bytes:
    from lecis.wire import encode_command  # imported here: lecis.wire imports this module

    return encode_command(command)


def reply_payload(
    command_id: str | None,
    status: ReplyStatus,
    ts: str,
    error: dict[str, str | None] | None = None,
    result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": command_id,
        "status": status.value,
        "error": error,
        "result": result if result is not None else {},
        "ts": ts,
    }
