"""Recorder ingest through real Mosquitto, beside a bare paho-mqtt subscriber; history query time.

Run: `.venv/bin/python -m bench.recorder_bench [--messages 100000] [--units 2] [--modules 5]`.

1. Ingest. A persistent subscriber session per consumer is registered on a
   private Mosquitto, then disconnected; a publisher puts `--messages` data
   messages (one reading each, as a unit sends them, over `--units` x
   `--modules` modules) into the broker, which queues them for each session.
   Each consumer then connects and drains its queue as fast as it can:
   - bare: a paho-mqtt subscriber that only counts messages;
   - recorder: the same subscriber decoding each payload (lecis.wire), feeding
     hub.recorder.Recorder (SQLite + CSV files of an open run) and evaluating
     rules on every reading (one condition per module, parsed by the script
     language's own expression grammar, hub.script.expr), timed until the
     recorder has committed the last message to the database and the files.
   Both drain the same messages in the same run; the ratio is recorder/bare.
2. History: 6 h of 5 modules at 1 Hz stored, then each module's reading read
   back downsampled to 1,000 buckets (min/max/count/mean); milliseconds per query.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.stats import table
from hub.recorder import Recorder
from hub.recorder.intake import DataRecord
from lecis.clock import SystemClock, iso_ts
from lecis.dcd import ReadingSpec
from lecis.topics import Topics
from lecis.wire import Birth, BirthModule
from provisioning.broker import MosquittoProcess

TOPICS = Topics("lab")
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def births(units: int, modules: int) -> dict[str, Birth]:
    out = {}
    for u in range(units):
        mods = {
            f"m{m}": BirthModule("instrument", "ezo", (ReadingSpec("v", "mg/L", 0.0, 100.0),))
            for m in range(modules)
        }
        out[f"unit-{u}"] = Birth(f"unit-{u}", "0.1.0", "boot", iso_ts(START), mods)
    return out


def client(client_id: str, port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    return c


def register(client_id: str, port: int) -> None:
    """A persistent session subscribed to every module's data, left offline so the broker queues."""
    done = threading.Event()
    c = client(client_id, port)
    c.on_subscribe = lambda *a: done.set()
    c.subscribe(TOPICS.every_module_filter("data"), qos=1)
    c.loop_start()
    done.wait(10)
    c.disconnect()
    c.loop_stop()


def publish(port: int, messages: int, units: int, modules: int) -> None:
    c = client("bench-publisher", port)
    c.loop_start()
    streams = [(f"unit-{u}", f"m{m}") for u in range(units) for m in range(modules)]
    infos = []
    for i in range(messages):
        unit, module = streams[i % len(streams)]
        seq = i // len(streams) + 1
        payload = json.dumps(
            {
                "seq": seq,
                "hist": False,
                "readings": [
                    {"ts": iso_ts(START + timedelta(seconds=seq)), "values": {"v": float(i % 997) / 10}}
                ],
            }
        )
        infos.append(c.publish(TOPICS.data(unit, module), payload, qos=1))
        if len(infos) >= 500:  # paho refuses to queue without bound
            infos.pop(0).wait_for_publish(30)
    for info in infos:
        info.wait_for_publish(30)
    c.disconnect()
    c.loop_stop()


def drain(client_id: str, port: int, messages: int, on_message: Callable[[str, bytes], None]) -> float:
    """Connect the registered session and take its queue; seconds from connect to the last message."""
    got = 0
    finished = threading.Event()

    def handle(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal got
        on_message(msg.topic, bytes(msg.payload))
        got += 1
        if got >= messages:
            finished.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.on_message = handle
    t0 = time.perf_counter()
    c.connect("127.0.0.1", port)
    c.loop_start()
    if not finished.wait(600):
        raise SystemExit(f"{client_id}: only {got} of {messages} messages arrived")
    elapsed = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    return elapsed


class Rules:
    """One condition per module, evaluated on each of its readings (what a `when` does)."""

    def __init__(self) -> None:
        self.kind = "hub.script.expr conditions"
        self.latest: dict[str, Any] = {}
        self.fired = 0
        self.armed: dict[str, bool] = {}
        self.conditions: dict[str, Any] = {}
        try:
            from hub.script.expr import parse_expression
            from hub.script.model import Position

            self._parse: Callable[[str], Any] | None = lambda text: parse_expression(
                text, Position("bench", 1, 1)
            )
        except ImportError:
            self._parse = None
            self.kind = "a stand-in Python comparison (hub.script.expr not importable)"

    def lookup(self, name: str) -> Any:
        return self.latest[name]

    def age(self, name: str) -> float | None:
        return 0.0

    def is_stale(self, name: str) -> bool:
        return False

    def on_reading(self, unit: str, module: str, values: dict[str, float]) -> None:
        key = f"{unit}/{module}"
        for name, value in values.items():
            self.latest[f"{key}.{name}"] = value
        cond: Any = self.conditions.get(key)
        if cond is None:
            text = f"{key}.v > 50 and {key}.v < 90"
            cond = self._parse(text) if self._parse else (lambda env, k=f"{key}.v": 50 < env.lookup(k) < 90)
            self.conditions[key] = cond
        now = bool(cond.evaluate(self) if self._parse else cond(self))
        if now and not self.armed.get(key):
            self.fired += 1  # edge-triggered, as a `when`
        self.armed[key] = now


def one_round(port: int, tmp: Path, n: int, messages: int, units: int, modules: int) -> dict[str, Any]:
    """Fill the broker for two fresh sessions, drain one bare, the other into a recorder."""
    register(f"bench-bare-{n}", port)
    register(f"bench-recorder-{n}", port)
    t0 = time.perf_counter()
    publish(port, messages, units, modules)
    published = time.perf_counter() - t0
    bare = drain(f"bench-bare-{n}", port, messages, lambda topic, payload: None)
    rec = Recorder(tmp / f"hub-{n}", SystemClock())
    rec.open()
    rec.open_run("bench-run", {"experiment": "bench"}, births(units, modules))
    rules = Rules()

    def feed(topic: str, payload: bytes) -> None:
        parts = TOPICS.split(topic)
        if parts is None:
            return
        # One decode for both, as the hub does: the recorder's record feeds the rules.
        record = rec.ingest_bytes(parts[0], parts[1], "data", payload, time.time())
        if isinstance(record, DataRecord):
            for point in record.points:
                rules.on_reading(parts[0], parts[1], point.values)

    t1 = time.perf_counter()
    received = drain(f"bench-recorder-{n}", port, messages, feed)
    rec.flush_sync(600)
    stored_s = time.perf_counter() - t1
    totals = rec.stats()["totals"]
    files = sorted((tmp / f"hub-{n}" / "runs" / "bench-run").rglob("*.csv"))
    lines = sum(p.read_bytes().count(b"\n") - 1 for p in files)
    rec.close()
    return {
        "published": published,
        "bare": messages / bare,
        "recorder": messages / stored_s,
        "received": received,
        "totals": totals,
        "lines": lines,
        "files": len(files),
        "rules": rules,
    }


def ingest_figures(messages: int, units: int, modules: int, rounds: int) -> None:
    results = []
    with MosquittoProcess() as broker, tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            results.append(one_round(broker.port, Path(tmp), n, messages, units, modules))
    rows = []
    for n, r in enumerate(results):
        rows.append(
            (
                f"round {n + 1}",
                f"bare {r['bare']:8.0f}/s   recorder + rules {r['recorder']:8.0f}/s   "
                f"ratio {r['recorder'] / r['bare']:.2f}",
            )
        )
    best = max(results, key=lambda r: r["recorder"])
    last = results[-1]
    totals = last["totals"]
    rows += [
        (
            "recorder + rules",
            f"median {statistics.median(r['recorder'] for r in results):.0f} readings/s, "
            f"best {best['recorder']:.0f} (to the last commit of database and files)",
        ),
        (
            "bare paho subscriber",
            f"median {statistics.median(r['bare'] for r in results):.0f} readings/s, "
            f"best {max(r['bare'] for r in results):.0f}",
        ),
        (
            "ratio recorder / bare",
            f"median {statistics.median(r['recorder'] / r['bare'] for r in results):.2f}",
        ),
        ("rules", f"{last['rules'].kind}; {last['rules'].fired} edges fired"),
        (
            "stored in database",
            f"{totals['stored']} of {messages} (duplicates {totals['duplicates']}, "
            f"lost {totals['readings_lost']}, bad {totals['bad']})",
        ),
        ("CSV rows", f"{last['lines']} in {last['files']} files"),
        ("target", "≥ 20,000 readings/s"),
    ]
    table(
        f"Recorder ingest, {messages} messages of 1 reading, {units} units x {modules} modules, "
        f"loopback Mosquitto, {rounds} rounds",
        rows,
    )


def history_figures(points: int = 1000, hours: float = 6.0, modules: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rec = Recorder(Path(tmp) / "hub", SystemClock())
        rec.open()
        seconds = int(hours * 3600)
        t0 = time.perf_counter()
        for s in range(1, seconds + 1):
            stamp = iso_ts(START + timedelta(seconds=s))
            for m in range(modules):
                rec.ingest(
                    "unit-0",
                    f"m{m}",
                    "data",
                    {
                        "seq": s,
                        "hist": False,
                        "readings": [{"ts": stamp, "values": {"v": (s * (m + 1)) % 1000 / 10}}],
                    },
                    0.0,
                )
        rec.flush_sync(600)
        load_s = time.perf_counter() - t0
        start = START.timestamp()
        times = []
        for _ in range(5):
            for m in range(modules):
                q0 = time.perf_counter()
                buckets = rec.history("unit-0", f"m{m}", "v", start, start + seconds + 1, points)
                times.append(time.perf_counter() - q0)
                assert len(buckets) == points, len(buckets)
        whole = []
        for _ in range(5):
            q0 = time.perf_counter()
            for m in range(modules):
                rec.history("unit-0", f"m{m}", "v", start, start + seconds + 1, points)
            whole.append(time.perf_counter() - q0)
        rec.close()
    ms = [t * 1000 for t in times]
    table(
        f"History query, {hours:g} h x {modules} modules at 1 Hz ({seconds * modules} readings) to {points} "
        "points",
        [
            ("stored (direct ingest)", f"{seconds * modules / load_s:.0f} readings/s"),
            (
                "one module's reading",
                f"median {statistics.median(ms):.1f} ms   max {max(ms):.1f} ms   n={len(ms)}",
            ),
            (
                f"all {modules} modules",
                f"median {statistics.median(whole) * 1000:.1f} ms   max {max(whole) * 1000:.1f} ms",
            ),
            ("target", "well under 200 ms"),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=2)
    parser.add_argument("--modules", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-history", action="store_true")
    args = parser.parse_args()
    ingest_figures(args.messages, args.units, args.modules, args.rounds)
    if not args.skip_history:
        history_figures()


if __name__ == "__main__":
    main()
