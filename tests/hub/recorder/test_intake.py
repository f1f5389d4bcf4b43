"""Checking payloads: the fast path for data messages agrees with the codec on every input."""

from __future__ import annotations

import json
import random
from typing import Any

from hub.recorder.intake import (
    Bad,
    DataRecord,
    EventRecord,
    StateRecord,
    _data,
    clean_text,
    decode,
    decode_bytes,
)
from lecis.wire import Data

GOOD = {"seq": 7, "hist": False, "readings": [{"ts": "2026-12-01T13:00:00.123Z", "values": {"ph": 7.01}}]}
VARIANTS: list[Any] = [
    GOOD,
    {**GOOD, "extra": {"ignored": True}},
    {**GOOD, "hist": True},
    {**GOOD, "seq": 0},
    {**GOOD, "seq": 2**63 - 1},
    {**GOOD, "seq": 2**63},
    {**GOOD, "seq": -1},
    {**GOOD, "seq": True},
    {**GOOD, "seq": 7.0},
    {**GOOD, "hist": 0},
    {**GOOD, "readings": []},
    {**GOOD, "readings": {}},
    {**GOOD, "readings": [GOOD["readings"][0], GOOD["readings"][0]]},
    {**GOOD, "readings": [{"ts": "2026-12-01T13:00:00Z", "values": {"ph": 7}}]},
    {**GOOD, "readings": [{"ts": "2026-12-01T13:00:00.123+00:00", "values": {"ph": 7}}]},
    {**GOOD, "readings": [{"ts": "2026-13-01T13:00:00.123Z", "values": {"ph": 7}}]},
    {**GOOD, "readings": [{"ts": "2026-12-01T13:00:00.123Z", "values": {}}]},
    {**GOOD, "readings": [{"ts": "2026-12-01T13:00:00.123Z", "values": {"ph": 10**20}}]},
    {**GOOD, "readings": [{"ts": "2026-12-01T13:00:00.123Z", "values": {"ph": 10**400}}]},
    {**GOOD, "readings": [{"ts": "2026-12-01T13:00:00.123Z", "values": {"ph": "7"}}]},
    {**GOOD, "readings": [{"ts": "2026-12-01T13:00:00.123Z", "values": {"ph": None}}]},
    {**GOOD, "readings": [{"ts": "2026-12-01T13:00:00.123Z", "values": {"pH": 7.0}}]},
    {**GOOD, "readings": [{"ts": "2026-12-01T13:00:00.123Z", "values": {"p\ud800": 7.0}}]},
    {**GOOD, "readings": [{"ts": "2026-12-01T13:00:00.123Z"}]},
    {**GOOD, "readings": ["x"]},
    {"hist": False, "readings": GOOD["readings"]},
    [],
    "data",
    None,
]


def outcome(record: Any) -> Any:
    if isinstance(record, DataRecord):
        return ("data", record.seq, record.hist, [(p.ts, p.ts_text, p.values) for p in record.points])
    return ("bad",)


def codec(payload: Any) -> Any:
    """What the codec alone makes of a payload (the reference the fast path must match)."""
    try:
        data = Data.from_json(payload)
    except (ValueError, TypeError):
        return ("bad",)
    return outcome(_data("bench-1", "ph1", data.to_json(), 0.0))


def test_the_fast_path_decides_exactly_as_the_codec() -> None:
    rnd = random.Random(3)
    payloads = list(VARIANTS)
    for _ in range(300):  # mutations of a good payload: a field dropped, retyped or bent
        p = json.loads(json.dumps(GOOD))
        target = rnd.choice([p, p["readings"][0], p["readings"][0]["values"]])
        key = rnd.choice(list(target))
        target[key] = rnd.choice([None, 1, -1, 1.5, "x", [], {}, True, 2**70, "2026-12-01T13:00:00.000Z"])
        payloads.append(p)
    for payload in payloads:
        assert outcome(decode("bench-1", "ph1", "data", payload, 0.0)) == codec(payload), payload


def test_raw_bytes_are_decoded_alike_and_refused_with_the_reason() -> None:
    good = decode_bytes("bench-1", "ph1", "data", json.dumps(GOOD).encode(), 0.0)
    assert outcome(good) == outcome(decode("bench-1", "ph1", "data", GOOD, 0.0))
    for raw, reason in [(b"\xff\xfe", "not UTF-8"), (b"[" * 100 + b"]" * 100, "nests deeper"),
                        (b'{"seq": NaN}', "NaN"), (json.dumps(GOOD).encode("utf-16"), "not UTF-8"),
                        (b"1" * 5000, "not JSON")]:
        bad = decode_bytes("bench-1", "ph1", "data", raw, 0.0)
        assert isinstance(bad, Bad) and reason in bad.problem, (raw[:20], bad)


def test_other_kinds_and_names() -> None:
    event = decode("bench-1", "ph1", "event", {"seq": 1, "ts": "2026-12-01T13:00:00.000Z", "level": "info",
                                                "code": "x\udfff", "message": "m", "hist": True}, 0.0)
    assert isinstance(event, EventRecord) and event.hist and event.code == "x\\udfff"
    state = decode("bench-1", "$state", "unit_state", {"state": "ready", "boot": "b",
                                                        "ts": "2026-12-01T13:00:00.000Z"}, 0.0)
    assert isinstance(state, StateRecord) and state.module == "$state"
    assert isinstance(decode("bench-1", "PH1", "data", GOOD, 0.0), Bad)
    assert isinstance(decode(None, "ph1", "data", GOOD, 0.0), Bad)
    assert clean_text("plain °C") == "plain °C"
