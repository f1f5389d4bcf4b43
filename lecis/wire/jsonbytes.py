"""JSON to and from bytes: the one place a labedge message becomes bytes, and back.

Encoding writes compact JSON in UTF-8 and never raises on a str holding a
lone surrogate (a command id sent as `"\\ud800"` decodes to one, and the
unit echoes ids in its replies). `json.dumps(ensure_ascii=False)` copies every
character of a string as it is; strict UTF-8 cannot encode a surrogate, so
the text is encoded with `backslashreplace`, which writes U+D800 as the six
characters `\\ud800`. Surrogates occur only inside JSON strings, where that is
the JSON escape of the same code unit: the bytes are always valid JSON and
decode to the same str. Every other character stays itself (`°C` is 2 bytes).

NaN and Infinity have no JSON form: encoding them raises WireEncodeError,
as does anything else JSON cannot hold. Decoding refuses them too, and
refuses payloads over MAX_PAYLOAD_BYTES or nested deeper than MAX_DEPTH.
"""

from __future__ import annotations

import json
from typing import Any

from lecis.errors import WireEncodeError, WireFormatError

MAX_PAYLOAD_BYTES = 1024 * 1024  # a $birth of many modules stays far below this
MAX_DEPTH = 32  # no contract message nests deeper than a few levels


def to_bytes(payload: Any) -> bytes:
    """`payload` as compact UTF-8 JSON; WireEncodeError when JSON cannot hold it."""
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise WireEncodeError(f"cannot write this message as JSON: {exc}") from None
    return text.encode("utf-8", "backslashreplace")


def _refuse_constant(name: str) -> Any:
    raise WireFormatError(f"{name} is not a JSON number")


def from_bytes(payload: bytes | bytearray | memoryview, *, max_bytes: int = MAX_PAYLOAD_BYTES,
               max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in `payload`; WireFormatError saying why it is not one."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise WireFormatError(f"payload must be bytes, got {type(payload).__name__}")
    data = bytes(payload)
    if len(data) > max_bytes:
        raise WireFormatError(f"payload is {len(data)} bytes; the limit is {max_bytes}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireFormatError(f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except WireFormatError:
        raise
    except RecursionError:
        raise WireFormatError("payload nests too deeply to be read") from None
    except ValueError as exc:  # JSONDecodeError, and integers past Python's digit limit
        raise WireFormatError(f"payload is not JSON: {exc}") from None
    if _depth(value, max_depth) > max_depth:
        raise WireFormatError(f"payload nests deeper than {max_depth} levels")
    return value


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a decoded value, counted without recursion; stops past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest
