"""Raw payloads: the recorder's own JSON scan and timestamp arithmetic decide exactly as the codec."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.recorder import Recorder
from hub.recorder.intake import Bad, DataRecord, decode, decode_bytes, epoch, fast_epoch, parse_json
from lecis.clock import iso_ts
from lecis.errors import WireFormatError
from lecis.wire import from_bytes
from tests.hub.recorder.helpers import SetClock, birth, data
from tests.hub.recorder.test_intake import GOOD, VARIANTS, outcome


def reference(raw: bytes) -> Any:
    """What the codec makes of raw bytes: from_bytes, then the recorder's decode of the value."""
    try:
        value = from_bytes(raw)
    except WireFormatError:
        return ("bad",)
    return outcome(decode("bench-1", "ph1", "data", value, 0.0))


def test_the_minute_arithmetic_gives_exactly_the_datetime_epoch() -> None:
    rnd = random.Random(5)
    start = datetime(1970, 1, 1, tzinfo=UTC)
    span_ms = 4_102_444_800_000  # to 2100
    stamps = [iso_ts(start + timedelta(milliseconds=rnd.randrange(span_ms))) for _ in range(3000)]
    stamps += ["2028-02-29T23:59:59.999Z", "1970-01-01T00:00:00.000Z", "2026-12-01T13:00:00.001Z"]
    for stamp in stamps:
        assert fast_epoch(stamp) == epoch(stamp), stamp
    for bad in ("2026-12-01T13:00:60.000Z", "2026-12-01T13:60:00.000Z", "2026-02-30T13:00:00.000Z"):
        with pytest.raises(ValueError):
            epoch(bad)
        with pytest.raises(ValueError):
            fast_epoch(bad)


def test_raw_payloads_decide_as_the_codec_on_listed_mutated_and_bent_bytes() -> None:
    rnd = random.Random(11)
    good = json.dumps(GOOD)
    raws = [json.dumps(v).encode() for v in VARIANTS]
    raws += [
        good.encode() + b"\n",  # trailing whitespace: valid JSON, the codec's path
        b" " + good.encode(),
        good.replace('"hist": false', '"hist": false, "x": ' + "[" * 40 + "]" * 40).encode(),  # too deep
        good.replace('"ph": 7.01', '"ph": 1e999').encode(),  # parses to inf
        good.replace('"ph": 7.01', '"ph": NaN').encode(),
        good.replace('"ph": 7.01', '"ph": 7').encode(),
        good.replace('"ph": 7.01', '"ph": 9007199254740993').encode(),
        good.replace('"ph": 7.01', '"ph": 7.01, "ph": 8.5').encode(),  # repeated key: the last wins
        good.replace('"seq": 7', '"seq": 7}, {"seq": 8').encode(),  # two objects
        good.encode()[:-1],
        good.encode("utf-16"),
        b"\xff" + good.encode(),
        good.replace("13:00:00.123Z", "13:00:60.123Z").encode(),
        good.replace("13:00:00.123Z", "13:00:00.123\\u005a").encode(),  # an escaped Z is still Z
    ]
    for _ in range(400):  # bytes bent at random: a character dropped, doubled or replaced
        chars = list(good)
        at = rnd.randrange(len(chars))
        choice = rnd.random()
        if choice < 0.3:
            del chars[at]
        elif choice < 0.6:
            chars.insert(at, chars[at])
        else:
            chars[at] = rnd.choice('{}[]",:0123456789.eE-+ tfnZT\\')
        raws.append("".join(chars).encode())
    for raw in raws:
        assert outcome(decode_bytes("bench-1", "ph1", "data", raw, 0.0)) == reference(raw), raw


def test_parse_json_takes_one_plain_json_text_only() -> None:
    assert parse_json(b'{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    for raw in (b"", b" {}", b"{} ", b"{}{}", b"{\"a\": NaN}", b"\xff", b"1" * 5000, b"[" * 100_000):
        assert parse_json(raw) is None, raw[:20]


async def test_ingest_raw_stores_good_messages_and_counts_bad_ones_per_module(tmp_path: Path) -> None:
    async with Recorder(tmp_path, SetClock()) as rec:
        rec.open_run("run-1", {}, {"bench-1": birth()})
        for seq in range(1, 101):
            rec.ingest_raw("bench-1", "ph1", "data", json.dumps(data(seq, {"ph": seq / 10})).encode(), 0.0)
        rec.ingest_raw("bench-1", "ph1", "data", b'{"seq": 101, "hist": false, "readings": "x"}', 0.0)
        rec.ingest_raw("bench-1", "ph1", "data", b"\xff\xfe", 0.0)
        rec.ingest_raw("bench-1", "PH!", "data", json.dumps(data(1, {"ph": 7.0})).encode(), 0.0)
        rec.ingest_raw("bench-1", "ph1", "data", json.dumps(data(50, {"ph": 1.0})).encode(), 0.0)  # repeat
        rec.ingest_raw("bench-1", "ph1", "event", b'{"seq": 102}', 0.0)
        await rec.flush()
        stats = rec.stats()
        counts = stats["units"]["bench-1"]["ph1"]
        assert rec.seqs("bench-1", "ph1") == list(range(1, 101))
        assert rec.latest("bench-1", "ph1")["values"] == {"ph": 10.0}  # type: ignore[index]
    assert counts["stored"] == 100 and counts["bad"] == 3 and counts["duplicates"] == 1
    assert counts["last_problem"] == "ts: is missing"  # the event, the last of the three
    assert stats["unattributed_bad"] == 1
    chunk = sorted((tmp_path / "runs/run-1/units/bench-1").glob("ph1.*.csv"))
    lines = chunk[0].read_text().splitlines()
    assert [line.split(",")[2] for line in lines[1:]] == [str(s) for s in range(1, 101)]
    assert lines[1].split(",")[3] == "0.1"


def test_a_record_from_raw_bytes_is_what_the_controller_reads() -> None:
    record = decode_bytes("bench-1", "ph1", "data", json.dumps(data(3, {"ph": 7})).encode(), 5.0)
    assert isinstance(record, DataRecord) and record.seq == 3 and record.received_at == 5.0
    assert record.points[0].values == {"ph": 7.0} and type(record.points[0].values["ph"]) is float
    assert isinstance(decode_bytes("bench-1", "ph1", "data", b"{}", 0.0), Bad)
