"""Hostile payloads for everything the hub reads off the broker, and a model of what must be recorded.

Each generated message is either *valid* (a contract-shaped reading or event
on a module whose sequence the model follows), *bad* (built with one defect
the contract names: a wrong type, a missing field, a value out of range, text
that is not Unicode, a number JSON cannot hold...) or *either* (borderline
content whose fate the contract leaves open: only the recorder's survival is
asserted for those, on modules kept apart from the counted ones).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from lecis.wire import MAX_DEPTH, MAX_PAYLOAD_BYTES

TS = "2026-11-21T15:04:05.123Z"
MAX_SEQ = 2**63 - 1

# Every code point, lone surrogates included (JSON can spell them as `\ud800`).
any_char = st.characters(exclude_categories=())
any_text = st.text(any_char, max_size=24)
surrogate = st.integers(0xD800, 0xDFFF).map(chr)
huge_int = st.one_of(st.integers(), st.integers(2**63 - 2, 2**64 + 2), st.integers(-(2**64), -1),
                     st.sampled_from([10**400, -(10**400), 10**4000]))


def json_values(allow_nan: bool = True) -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), huge_int, st.floats(allow_nan=allow_nan,
                                                                     allow_infinity=allow_nan), any_text)
    return st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(any_text, inner, max_size=4)),
                        max_leaves=12)


def dumps(value: Any) -> bytes:
    """JSON bytes that may hold NaN/Infinity tokens and `\\udXXX` escapes of lone surrogates."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode("ascii")


def nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


# ---- valid messages -------------------------------------------------------------------------------

def data(seq: int, value: float = 7.0, hist: bool = False, reading: str = "ph") -> dict[str, Any]:
    return {"seq": seq, "hist": hist, "readings": [{"ts": TS, "values": {reading: value}}]}


def event(seq: int, code: str = "bad_data", level: str = "warning") -> dict[str, Any]:
    return {"seq": seq, "hist": False, "ts": TS, "level": level, "code": code, "message": "seen: garbage"}


def module_state() -> dict[str, Any]:
    return {"lecis": "IDLE", "control": "REMOTE", "outputs": {}, "error": None, "ts": TS}


def unit_state(state: str = "ready") -> dict[str, Any]:
    return {"state": state, "boot": "b0", "ts": TS}


def birth(unit: str) -> dict[str, Any]:
    return {"unit": unit, "version": "0.1.0", "boot": "b0", "ts": TS, "modules": {
        "ph1": {"kind": "instrument", "driver": "ezo", "description": "",
                "readings": [{"name": "ph", "unit": "pH", "range": [0.001, 14.0]}],
                "commands": {}, "on_controller_loss": "hold"}}}


VALID_SHAPES = {"data": lambda: data(1), "event": lambda: event(1), "state": module_state,
                "unit_state": unit_state, "birth": lambda: birth("u")}


# ---- one defect each ------------------------------------------------------------------------------

def _not_int() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), any_text,
                     st.lists(st.integers(), max_size=2),
                     st.dictionaries(any_text, st.integers(), max_size=2),
                     st.integers(max_value=-1), st.integers(min_value=MAX_SEQ + 1),
                     st.sampled_from([10**400, -(10**400)]))


def _not_bool() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.integers(0, 1), any_text, st.lists(st.booleans(), max_size=2))


def _not_ts() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), huge_int, any_text, st.sampled_from([
        "2026-11-21T15:04:05Z", "2026-11-21 15:04:05.123Z", "2026-02-30T15:04:05.123Z",
        "2026-11-21T25:04:05.123Z", "2026-11-21T15:04:05.123+00:00", "2026-11-21T15:04:05.123z",
        "\ud8002026-11-21T15:04:05.123Z", TS + "\x00"]))


def _not_number() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), any_text, st.lists(st.floats(), max_size=2),
                     st.sampled_from([10**400, -(10**400), float("nan"), float("inf"), float("-inf")]))


def _not_string() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), huge_int, st.lists(any_text, max_size=2),
                     st.dictionaries(any_text, any_text, max_size=2))


def not_object() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), huge_int, any_text, st.lists(st.integers(), max_size=3))


def _bad_reading_name() -> st.SearchStrategy[str]:
    names = ["", "PH", "1ph", "ph-1", "ph 1", "p" * 33, "\u00e9t\u00e9", "ph\ud800"]
    return st.one_of(st.sampled_from(names), surrogate)


@st.composite
def bad_data(draw: st.DrawFn, seq: int) -> dict[str, Any]:
    """A data message with one defect that the contract refuses; `seq` (when kept) is a fresh one."""
    msg = data(seq)
    reading = msg["readings"][0]
    defect = draw(st.sampled_from([
        "no seq", "seq", "no hist", "hist", "no readings", "readings type", "readings empty",
        "reading type", "no ts", "ts", "no values", "values type", "values empty", "value", "value name",
        "second reading bad"]))
    if defect == "no seq":
        del msg["seq"]
    elif defect == "seq":
        msg["seq"] = draw(_not_int())
    elif defect == "no hist":
        del msg["hist"]
    elif defect == "hist":
        msg["hist"] = draw(_not_bool())
    elif defect == "no readings":
        del msg["readings"]
    elif defect == "readings type":
        msg["readings"] = draw(st.one_of(not_object(), st.dictionaries(any_text, st.integers(), max_size=2)))
    elif defect == "readings empty":
        msg["readings"] = []
    elif defect == "reading type":
        msg["readings"] = [draw(not_object())]
    elif defect == "no ts":
        del reading["ts"]
    elif defect == "ts":
        reading["ts"] = draw(_not_ts())
    elif defect == "no values":
        del reading["values"]
    elif defect == "values type":
        reading["values"] = draw(not_object())
    elif defect == "values empty":
        reading["values"] = {}
    elif defect == "value":
        reading["values"] = {"ph": 7.0, "do_mg": draw(_not_number())}
    elif defect == "value name":
        reading["values"] = {draw(_bad_reading_name()): 7.0}
    else:
        msg["readings"].append({"ts": draw(_not_ts()), "values": {"ph": 7.1}})
    return msg


@st.composite
def bad_event(draw: st.DrawFn, seq: int) -> dict[str, Any]:
    msg = event(seq)
    defect = draw(st.sampled_from(["no seq", "seq", "no ts", "ts", "level", "no code", "code", "message"]))
    if defect == "no seq":
        del msg["seq"]
    elif defect == "seq":
        msg["seq"] = draw(_not_int())
    elif defect == "no ts":
        del msg["ts"]
    elif defect == "ts":
        msg["ts"] = draw(_not_ts())
    elif defect == "level":
        msg["level"] = draw(st.one_of(_not_string(), st.sampled_from(["", "error", "ALARM", "info\ud800"])))
    elif defect == "no code":
        del msg["code"]
    elif defect == "code":
        msg["code"] = draw(st.one_of(_not_string(), st.just("")))
    else:
        msg["message"] = draw(_not_string())
    return msg


@st.composite
def bad_state(draw: st.DrawFn, kind: str, unit: str) -> dict[str, Any]:
    """A module state, `$state` or `$birth` with one defect."""
    msg = {"state": module_state, "unit_state": unit_state}.get(kind, lambda: birth(unit))()
    key = draw(st.sampled_from(sorted(k for k in msg if k not in ("outputs", "error"))))
    if draw(st.booleans()):
        del msg[key]
    elif key == "ts":
        msg[key] = draw(_not_ts())
    elif key == "modules":
        msg[key] = draw(st.one_of(not_object(), st.just({"ph1": {"kind": "robot"}})))
    elif key == "version":  # an empty version is a version
        msg[key] = draw(_not_string())
    else:
        msg[key] = draw(st.one_of(_not_string(), st.just("")))
    return msg


# ---- raw bytes for the MQTT side ----------------------------------------------------------------

INVALID_UTF8 = [b"\xff\xfe{}", b'{"seq": 1, "hist": false, "x": "\xc3("}', b'{"code": "\xed\xa0\x80"}',
                b"\x80",
                b'{"seq":1,"hist":false,"readings":[{"ts":"' + TS.encode() + b'","values":{"ph":\xf0}}]}']


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    """Bytes no reader may take for a message: not UTF-8, not JSON, NaN tokens, too deep, too big."""
    kind = draw(st.sampled_from(["raw", "utf8", "json", "nan", "deep", "huge", "number", "top"]))
    if kind == "raw":
        return draw(st.binary(max_size=64))
    if kind == "utf8":
        return draw(st.sampled_from(INVALID_UTF8))
    if kind == "json":
        return dumps(draw(json_values()))
    if kind == "nan":
        token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        return (f'{{"seq": 1, "hist": false, "readings": [{{"ts": "{TS}", "values": {{"ph": {token}}}}}]}}'
                .encode())
    if kind == "deep":
        depth = draw(st.sampled_from([MAX_DEPTH + 1, MAX_DEPTH + 5, 5000, 200_000]))
        return b"[" * depth + b"]" * depth
    if kind == "huge":
        # Around the 1 MiB limit: a string field that pushes the payload just over it.
        over = draw(st.integers(1, 16))
        head = b'{"seq": 1, "hist": false, "code": "x", "message": "'
        filler = MAX_PAYLOAD_BYTES - len(head) - 2 + over
        return head + b"m" * filler + b'"}'
    if kind == "number":
        return b'{"seq": 1' + b"9" * draw(st.sampled_from([4301, 10_000])) + b', "hist": false}'
    return dumps(draw(not_object()))


def near_limit(seq: int) -> bytes:
    """A valid event just under the 1 MiB limit: must be recorded like any other."""
    head = dumps(event(seq))[:-1] + b', "pad": "'
    return head + b"p" * (MAX_PAYLOAD_BYTES - len(head) - 2) + b'"}'


# ---- what the recorder must hold afterwards ------------------------------------------------------

@dataclass
class SeqModel:
    """The contract's rule for one module's data and events, as docs/recorder.md spells it out.

    A seq above the last is stored (a jump over n seqs is one gap of n readings
    lost); a seq stored before is a duplicate; a late seq inside a gap is stored
    and fills it (recovered, one reading fewer lost).
    """

    last: int | None = None
    stored: set[int] = field(default_factory=set)
    received: int = 0
    duplicates: int = 0
    gaps: int = 0
    lost: int = 0
    recovered: int = 0

    def offer(self, seq: int) -> bool:
        self.received += 1
        if self.last is None or seq > self.last:
            if self.last is not None and seq > self.last + 1:
                self.gaps += 1
                self.lost += seq - self.last - 1
            self.last = seq
        elif seq in self.stored:
            self.duplicates += 1
            return False
        else:
            self.recovered += 1
            self.lost = max(0, self.lost - 1)
        self.stored.add(seq)
        return True

    def counts(self) -> dict[str, int]:
        return {"received": self.received, "stored": len(self.stored), "duplicates": self.duplicates,
                "gaps": self.gaps, "readings_lost": self.lost, "recovered": self.recovered}


@st.composite
def seq_steps(draw: st.DrawFn, start: int = 1) -> list[int]:
    """A sequence of seqs as a troubled unit may send them: in order, repeated, backwards, with gaps."""
    seqs: list[int] = []
    current = start
    for _ in range(draw(st.integers(1, 30))):
        step = draw(st.sampled_from(["next", "next", "next", "repeat", "back", "gap"]))
        if step == "next" or not seqs:
            current += 1
        elif step == "repeat":
            pass
        elif step == "back":
            current = max(0, current - draw(st.integers(1, 5)))
        else:
            current += draw(st.integers(2, 1000))
        seqs.append(current)
    return seqs
