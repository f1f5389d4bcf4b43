"""Typed reads of decoded JSON for the decoders; a bad value raises WireFormatError naming its field."""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from typing import Any, TypeVar

from lecis.clock import parse_ts
from lecis.errors import WireFormatError

TS_PATTERN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TS_RULE = "UTC ISO 8601 with milliseconds and Z (2026-11-21T15:04:05.123Z)"
MAX_SEQ = 2**63 - 1  # the outbox stores seq as an SQLite integer
_MISSING = object()
E = TypeVar("E")


def kind_of(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Obj:
    """A JSON object being decoded, at `path` (`""` for the payload itself)."""

    def __init__(self, value: Any, path: str = "") -> None:
        if not isinstance(value, dict):
            where = path or None
            raise WireFormatError(f"must be a JSON object, got {kind_of(value)}", where)
        self.value: dict[str, Any] = value
        self.path = path

    def field(self, key: str) -> str:
        return join(self.path, key)

    def _get(self, key: str, required: bool) -> Any:
        value = self.value.get(key, _MISSING)
        if value is _MISSING and required:
            raise WireFormatError("is missing", self.field(key))
        return value

    def fail(self, key: str, message: str) -> WireFormatError:
        return WireFormatError(message, self.field(key))

    def string(self, key: str, *, nonempty: bool = False, nullable: bool = False,
               default: Any = _MISSING) -> Any:
        value = self._get(key, default is _MISSING)
        if value is _MISSING:
            return default
        if value is None and nullable:
            return None
        if not isinstance(value, str) or (nonempty and not value):
            wanted = "a non-empty string" if nonempty else "a string"
            raise self.fail(key, f"must be {wanted}{' or null' if nullable else ''}, got {kind_of(value)}")
        return value

    def choice(self, key: str, choices: Collection[str], default: Any = _MISSING) -> Any:
        value = self._get(key, default is _MISSING)
        if value is _MISSING:
            return default
        if not isinstance(value, str) or value not in choices:
            shown = repr(value) if isinstance(value, str) else kind_of(value)
            raise self.fail(key, f"must be one of {', '.join(choices)}, got {shown}")
        return value

    def enum(self, key: str, cls: type[E]) -> E:
        values = [member.value for member in cls]  # type: ignore[attr-defined]
        return cls(self.choice(key, values))  # type: ignore[call-arg]

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default is _MISSING)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {kind_of(value)}")
        return value

    def integer(self, key: str, minimum: int = 0, maximum: int = MAX_SEQ) -> int:
        value = self._get(key, True)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, got {kind_of(value)}")
        if not minimum <= value <= maximum:
            raise self.fail(key, f"must be an integer from {minimum} to {maximum}")
        return value

    def number(self, key: str, *, nullable: bool = False, default: Any = _MISSING) -> Any:
        value = self._get(key, default is _MISSING)
        if value is _MISSING:
            return default
        if value is None and nullable:
            return None
        return number_at(value, self.field(key), nullable)

    def ts(self, key: str, *, nullable: bool = False) -> Any:
        value = self._get(key, True)
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not TS_PATTERN.match(value):
            shown = repr(value) if isinstance(value, str) else kind_of(value)
            raise self.fail(key, f"must be {TS_RULE}{' or null' if nullable else ''}, got {shown}")
        try:
            parse_ts(value)
        except ValueError:
            raise self.fail(key, f"is not a real instant: {value!r}") from None
        return value

    def obj(self, key: str, *, nullable: bool = False, default: Any = _MISSING) -> Any:
        value = self._get(key, default is _MISSING)
        if value is _MISSING:
            return default
        if value is None and nullable:
            return None
        return Obj(value, self.field(key))

    def mapping(self, key: str, default: Any = _MISSING) -> Any:
        """A JSON object kept as a plain dict (`outputs`, `result`, `upload`)."""
        found = self.obj(key, default=default)
        return found.value if isinstance(found, Obj) else found

    def array(self, key: str, *, nonempty: bool = False) -> list[Any]:
        value = self._get(key, True)
        if not isinstance(value, list) or (nonempty and not value):
            wanted = "a non-empty array" if nonempty else "an array"
            raise self.fail(key, f"must be {wanted}, got {kind_of(value)}")
        return value


def number_at(value: Any, field: str, nullable: bool = False) -> float:
    """A finite JSON number as a float (an integer too large for a float is refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        wanted = "a number or null" if nullable else "a number"
        raise WireFormatError(f"must be {wanted}, got {kind_of(value)}", field)
    try:
        number = float(value)
    except OverflowError:
        raise WireFormatError("is too large for a number", field) from None
    if not math.isfinite(number):
        raise WireFormatError("must be a finite number", field)
    return number
