"""Payloads from the wire checked and turned into records for the writer: pure, never raising.

Everything a unit sends reaches `decode` as an already-parsed JSON value that
may be hostile (wrong types, huge integers, lone surrogates, deep nesting,
missing fields). The codecs of `lecis.wire` decide what is well formed; a
payload that is not becomes a `Bad` record saying what was wrong, so it is
counted and logged by the writer and nothing else is touched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lecis.clock import parse_ts
from lecis.dcd_commands import NAME as VALUE_NAME
from lecis.errors import LabedgeError, WireFormatError
from lecis.topics import MODULE_ID, UNIT_ID
from lecis.wire import MAX_PAYLOAD_BYTES, Birth, Data, Event, ModuleState, UnitState, from_bytes, to_bytes
from lecis.wire.fields import MAX_SEQ, TS_PATTERN

KINDS = ("data", "event", "state", "birth", "unit_state")
#: The module under which a unit's `$state` and `$birth` are kept in the state table.
UNIT_STATE_KEY, BIRTH_KEY = "$state", "$birth"


@dataclass(slots=True)  # not frozen: built per message, and frozen init costs a setattr call per field
class Point:
    """One reading: the unit's own timestamp (text and epoch seconds) and its values."""

    ts: float
    ts_text: str
    values: dict[str, float]


@dataclass(slots=True)
class DataRecord:
    unit: str
    module: str
    seq: int
    hist: bool
    received_at: float
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class EventRecord:
    unit: str
    module: str
    seq: int
    hist: bool
    received_at: float
    ts: float
    ts_text: str
    level: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class StateRecord:
    """A retained state (`M/state`, `$state`, `$birth`): the last one per key is kept."""

    unit: str
    module: str  # a module id, or UNIT_STATE_KEY / BIRTH_KEY
    payload: str  # compact JSON, lone surrogates written as escapes
    received_at: float
    birth: Birth | None = None


@dataclass(frozen=True, slots=True)
class Bad:
    """A payload refused: `unit`/`module` are None when the names themselves were unusable."""

    unit: str | None
    module: str | None
    kind: str
    problem: str
    received_at: float


Record = DataRecord | EventRecord | StateRecord | Bad
_SURROGATE = re.compile("[\ud800-\udfff]")
# Names already found valid, so the hot path skips their regexes; bounded against a flood of new ones.
_NAMES_KEPT = 10_000
_GOOD_NAMES: set[tuple[str, str]] = set()
_GOOD_VALUES: set[str] = set()


def clean_text(text: str) -> str:
    """`text` with each lone surrogate written as its escape `\\ud800`: storable as UTF-8, nothing lost."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def epoch(ts_text: str) -> float:
    return parse_ts(ts_text).timestamp()


# Epoch microseconds of each minute seen (`2026-12-01T13:04`), so a stamp costs two int() calls,
# not a datetime; bounded. Exactly `epoch`'s value: both divide whole microseconds by 10**6.
_MINUTES: dict[str, int] = {}
_MINUTES_KEPT = 4096


def fast_epoch(ts_text: str) -> float:
    """`epoch` of a stamp that matched TS_PATTERN; ValueError where `epoch` refuses it."""
    minute = _MINUTES.get(ts_text[:16])
    if minute is None:
        minute = int(parse_ts(ts_text[:16] + ":00.000Z").timestamp()) * 1_000_000
        if len(_MINUTES) >= _MINUTES_KEPT:
            _MINUTES.clear()
        _MINUTES[ts_text[:16]] = minute
    seconds = int(ts_text[17:19])
    if seconds > 59:
        raise ValueError(f"timestamp {ts_text!r}: second out of range")
    return (minute + seconds * 1_000_000 + int(ts_text[20:23]) * 1000) / 1_000_000


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# The C scanner itself: json.loads builds a decoder and two regex matches around it per call.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder(  # the documented decoder's own scanner
    parse_constant=_refuse
).scan_once  # type: ignore[attr-defined]


def parse_json(payload: bytes) -> Any:
    """The JSON value of `payload` when it is plainly one UTF-8 JSON text; None for anything else.

    None sends the payload to the codec (`from_bytes`), which decides and names the reason.
    """
    try:
        text = payload.decode("utf-8")
        value, end = _SCAN(text, 0)
    except (ValueError, RecursionError, StopIteration):
        return None
    return value if end == len(text) else None


def decode_bytes(unit: Any, module: Any, kind: Any, payload: bytes, received_at: float) -> Record:
    """`decode` of the raw MQTT payload; a well-formed data message takes a fast path."""
    bad = _bad_names(unit, module, kind, received_at)
    if bad is not None:
        return bad
    if kind == "data" and type(payload) is bytes and len(payload) <= MAX_PAYLOAD_BYTES:
        value = parse_json(payload)
        if value is not None:
            # exact: no keys beyond the contract's, so no nesting deeper than from_bytes allows
            fast = _fast_data(unit, module, value, received_at, exact=True)
            if fast is not None:
                return fast
    try:
        value = from_bytes(payload)
    except WireFormatError as exc:
        return Bad(
            unit, module if isinstance(module, str) else None, str(kind), clean_text(str(exc)), received_at
        )
    return decode(unit, module, kind, value, received_at)


def decode(unit: Any, module: Any, kind: Any, payload: Any, received_at: float) -> Record:
    """The record for one message, or `Bad` saying what was wrong with it."""
    bad = _bad_names(unit, module, kind, received_at)
    if bad is not None:
        return bad
    if kind == "data":
        fast = _fast_data(unit, module, payload, received_at)
        if fast is not None:
            return fast
    try:
        if kind == "data":
            return _data(unit, module, payload, received_at)
        if kind == "event":
            return _event(unit, module, payload, received_at)
        if kind == "state":
            ModuleState.from_json(payload)
            return StateRecord(unit, module, _json(payload), received_at)
        if kind == "unit_state":
            UnitState.from_json(payload)
            return StateRecord(unit, UNIT_STATE_KEY, _json(payload), received_at)
        if kind == "birth":
            birth = Birth.from_json(payload)
            if birth.unit != unit:
                return Bad(
                    unit, None, kind, f"unit: the birth names {birth.unit!r}, its topic {unit!r}", received_at
                )
            return StateRecord(unit, BIRTH_KEY, _json(payload), received_at, birth)
    except LabedgeError as exc:  # WireFormatError names the field; WireEncodeError: not storable JSON
        return Bad(unit, module if isinstance(module, str) else None, kind, clean_text(str(exc)), received_at)
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        return Bad(
            unit,
            module if isinstance(module, str) else None,
            kind,
            f"cannot be read: {type(exc).__name__}",
            received_at,
        )
    return Bad(
        unit,
        module if isinstance(module, str) else None,
        str(kind),
        f"kind {_shown(kind)} is not one of {', '.join(KINDS)}",
        received_at,
    )


def _bad_names(unit: Any, module: Any, kind: Any, received_at: float) -> Bad | None:
    if type(unit) is str and type(module) is str and (unit, module) in _GOOD_NAMES:
        return None
    if not isinstance(unit, str) or UNIT_ID.match(unit) is None:
        return Bad(None, None, str(kind), f"unit id {_shown(unit)} is not a valid unit id", received_at)
    if kind in ("data", "event", "state") and (
        not isinstance(module, str) or MODULE_ID.match(module) is None
    ):
        return Bad(unit, None, str(kind), f"module id {_shown(module)} is not a valid module id", received_at)
    if type(module) is str and MODULE_ID.match(module) is not None and len(_GOOD_NAMES) < _NAMES_KEPT:
        _GOOD_NAMES.add((unit, module))
    return None


def _fast_data(
    unit: str, module: str, payload: Any, received_at: float, exact: bool = False
) -> DataRecord | None:
    """The record of a plainly well-formed data message, else None (`Data.from_json` then decides).

    Accepts only what `Data.from_json` accepts too, checked with exact types and no wrappers:
    the recorder's hot path at tens of thousands of messages a second. `exact`: only the
    contract's keys, nothing else (what `from_bytes` would still have to check stays out).
    """
    if type(payload) is not dict or (exact and len(payload) != 3):
        return None
    seq, hist, readings = payload.get("seq"), payload.get("hist"), payload.get("readings")
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ or type(hist) is not bool:
        return None
    if type(readings) is not list or not readings:
        return None
    points = []
    for reading in readings:
        if type(reading) is not dict or (exact and len(reading) != 2):
            return None
        ts, values = reading.get("ts"), reading.get("values")
        if type(ts) is not str or type(values) is not dict or not values or TS_PATTERN.match(ts) is None:
            return None
        # A parse of our own (exact) is ours to convert in place; a caller's payload is copied.
        floats = values if exact else dict(values)
        for name, value in values.items():
            kind = type(value)
            if kind is float:
                if value - value != 0.0:  # inf or NaN (1e999 parses to inf)
                    return None
            elif kind is int and -(2**53) <= value <= 2**53:
                floats[name] = float(value)
            else:
                return None
            if name not in _GOOD_VALUES:
                if type(name) is not str or VALUE_NAME.match(name) is None:
                    return None
                if len(_GOOD_VALUES) < _NAMES_KEPT:
                    _GOOD_VALUES.add(name)
        try:
            at = fast_epoch(ts)
        except ValueError:
            return None
        points.append(Point(at, ts, floats))
    return DataRecord(unit, module, seq, hist, received_at, tuple(points))


def _data(unit: str, module: str, payload: Any, received_at: float) -> Record:
    data = Data.from_json(payload)
    points = []
    for i, reading in enumerate(data.readings):
        for name in reading.values:
            if VALUE_NAME.match(name) is None:
                return Bad(
                    unit,
                    module,
                    "data",
                    f"readings[{i}].values: {_shown(name)} is not a reading name "
                    "(lower-case letters, digits and _, starting with a letter, up to 32)",
                    received_at,
                )
        points.append(Point(epoch(reading.ts), reading.ts, reading.values))
    return DataRecord(unit, module, data.seq, data.hist, received_at, tuple(points))


def _event(unit: str, module: str, payload: Any, received_at: float) -> Record:
    event = Event.from_json(payload)
    hist = payload.get("hist", False) is True
    return EventRecord(
        unit,
        module,
        event.seq,
        hist,
        received_at,
        epoch(event.ts),
        event.ts,
        event.level,
        clean_text(event.code),
        clean_text(event.message),
    )


def _json(payload: Any) -> str:
    return to_bytes(payload).decode("utf-8")


def _shown(value: Any) -> str:
    text = repr(value)
    return clean_text(text if len(text) <= 60 else text[:57] + "...")
