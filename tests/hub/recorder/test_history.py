"""History queries: min/max/count/mean per bucket against a brute-force oracle; latest values."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from hub.recorder import Bucket, Recorder, RecorderError
from lecis.clock import iso_ts
from tests.hub.recorder.helpers import T0, SetClock


def oracle(samples: list[tuple[float, float]], start: float, end: float, points: int) -> list[Bucket]:
    width = (end - start) / points
    groups: dict[int, list[float]] = {}
    for ts, value in samples:
        if start <= ts < end:
            groups.setdefault(min(int((ts - start) / width), points - 1), []).append(value)
    return [Bucket(start + b * width, min(v), max(v), len(v), math.fsum(v) / len(v))
            for b, v in sorted(groups.items())]


async def test_buckets_hold_the_min_max_count_and_mean_of_their_readings(tmp_path: Path) -> None:
    rnd = random.Random(7)
    base = T0.timestamp()
    samples: list[tuple[float, float]] = []
    async with Recorder(tmp_path, SetClock()) as rec:
        t = base
        for seq in range(1, 3001):
            t += rnd.choice((0.25, 1.0, 1.0, 3.7, 40.0))  # irregular, with holes
            ms = round(t * 1000) / 1000  # the wire carries milliseconds
            value = rnd.uniform(-50, 50)
            samples.append((ms, value))
            stamp = iso_ts(T0.fromtimestamp(ms, T0.tzinfo))
            reading = {"ts": stamp, "values": {"do_mg": value, "do_sat": -value}}
            rec.ingest("bench-1", "do1", "data", {"seq": seq, "hist": False, "readings": [reading]}, 0.0)
        await rec.flush()
        last_ts = samples[-1][0]
        for _ in range(30):
            start = base + rnd.uniform(-100, last_ts - base)
            end = start + rnd.uniform(1, last_ts - base)
            points = rnd.choice((1, 7, 100, 1000, 5000))
            got = rec.history("bench-1", "do1", "do_mg", start, end, points)
            want = oracle(samples, start, end, points)
            assert [(b.ts, b.min, b.max, b.count) for b in got] == [
                (b.ts, b.min, b.max, b.count) for b in want]
            assert all(math.isclose(g.mean, w.mean, abs_tol=1e-9) for g, w in zip(got, want, strict=True))
        whole = rec.history("bench-1", "do1", "do_sat", base, last_ts + 1, 10)
        negated = oracle([(ts, -v) for ts, v in samples], base, last_ts + 1, 10)
        assert [(b.min, b.max, b.count) for b in whole] == [(b.min, b.max, b.count) for b in negated]
        assert sum(b.count for b in whole) == 3000
        last = samples[-1][1]
        assert rec.latest("bench-1", "do1") == {"ts": last_ts, "seq": 3000,
                                                "values": {"do_mg": last, "do_sat": -last}}


async def test_unknown_series_give_nothing_and_bad_windows_are_refused(tmp_path: Path) -> None:
    async with Recorder(tmp_path, SetClock()) as rec:
        assert rec.history("bench-1", "ph1", "ph", 0.0, 10.0, 10) == []
        assert rec.latest("bench-1", "ph1") is None
        with pytest.raises(RecorderError, match=r"end .* must be after start"):
            rec.history("bench-1", "ph1", "ph", 10.0, 10.0, 10)
        with pytest.raises(RecorderError, match="points must be"):
            rec.history("bench-1", "ph1", "ph", 0.0, 10.0, 0)
