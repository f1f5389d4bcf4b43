"""Recorder ingest through real Mosquitto, beside a bare paho-mqtt subscriber; history query time.

Run: `.venv/bin/python -m bench.recorder_bench [--messages 100000] [--units 2] [--modules 5]`.

1. Ingest. Persistent subscriber sessions are registered on a private
   Mosquitto, then disconnected; a publisher puts `--messages` data messages
   (one reading each, as a unit sends them, over `--units` x `--modules`
   modules) into the broker, which queues them for each session. Each
   consumer then connects and drains its queue as fast as it can:
   - bare: a plain paho-mqtt subscriber (its own network thread) that only
     counts messages: the reference;
   - link: the hub's own MQTT path (hub.link.HubLink on hub.mqtt_transport,
     on an asyncio loop, topics split and routed as in the hub) counting only;
   - recorder: that link feeding hub.recorder.Recorder.ingest_raw (queued as
     bytes; decoded, stored in SQLite and the CSV files of an open run on the
     writer thread);
   - recorder+rules: that link feeding Recorder.ingest_bytes (decoded once on
     the loop's thread, as the hub does) and the controller's Engine
     (hub.controller) fed every reading of that decode, running one `when`
     task per module, its effects recorded through the run's sink (a stand-in
     condition if the engine cannot be imported; the output says which).
   Rates run to the recorder's last commit of database and files. All three
   drain the same messages in the same round; `--rounds` repeats it. The same
   payloads fed in a loop without the broker show what recorder + rules cost alone.
2. History: 6 h of 5 modules at 1 Hz stored, then each module's reading read
   back downsampled to 1,000 buckets (min/max/count/mean); milliseconds per query.
"""

from __future__ import annotations

import argparse
import asyncio
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
from hub.config import HubConfig
from hub.link import HubLink, LinkHandlers
from hub.recorder import Recorder
from hub.recorder.intake import DataRecord
from lecis.clock import SystemClock, iso_ts
from lecis.dcd import ReadingSpec
from lecis.topics import Topics
from lecis.unit_config import BrokerConfig
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


def messages_for(messages: int, units: int, modules: int) -> list[tuple[str, bytes]]:
    """(topic, payload) of each data message, in publishing order: one reading each, as units send."""
    streams = [(f"unit-{u}", f"m{m}") for u in range(units) for m in range(modules)]
    out = []
    for i in range(messages):
        unit, module = streams[i % len(streams)]
        seq = i // len(streams) + 1
        reading = {"ts": iso_ts(START + timedelta(seconds=seq)), "values": {"v": float(i % 997) / 10}}
        out.append(
            (
                TOPICS.data(unit, module),
                json.dumps({"seq": seq, "hist": False, "readings": [reading]}).encode(),
            )
        )
    return out


def publish(port: int, messages: int, units: int, modules: int) -> None:
    c = client("bench-publisher", port)
    c.loop_start()
    infos = []
    for topic, payload in messages_for(messages, units, modules):
        infos.append(c.publish(topic, payload, qos=1))
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


DataHandler = Callable[[str, str, bytes, float], None]


def link_id(name: str, n: int) -> str:
    return f"bench-{name.replace('+', '-')}-{n}"


def drain_link(hub_id: str, port: int, messages: int, on_data: DataHandler) -> float:
    """Drain the registered session through the hub's own link; seconds from connect to the last message."""

    async def run() -> float:
        got = 0
        finished = asyncio.Event()

        def data_bytes(unit: str, module: str, payload: bytes, at: float) -> None:
            nonlocal got
            on_data(unit, module, payload, at)
            got += 1
            if got >= messages:
                finished.set()

        config = HubConfig(hub_id, "recorder_bench", BrokerConfig(port=port), Path("unused"))
        link = HubLink(config, LinkHandlers(data_bytes=data_bytes))
        t0 = time.perf_counter()
        async with link:
            try:
                async with asyncio.timeout(600):
                    await finished.wait()
            except TimeoutError:
                raise SystemExit(f"{hub_id}: only {got} of {messages} messages arrived") from None
            return time.perf_counter() - t0

    return asyncio.run(run())


class Rules:
    """The controller's rules on every reading: hub.controller's Engine running one `when` task per module.

    Effects go to the run's sink, as the hub's runner records them. When the engine or the script
    loader cannot be imported, a stand-in evaluates the same conditions in Python (and says so).
    """

    def __init__(self, rec: Recorder, units: int, modules: int) -> None:
        self.sink = rec.sink("bench-run")
        self.fired = 0
        self.engine: Any = None
        self.Reading: Any = None
        try:
            from hub.controller.effects import Reading
            from hub.controller.engine import Engine
            from hub.script.loader import parse_script
        except ImportError as exc:
            self.kind = f"a stand-in Python comparison per reading (the engine is not importable: {exc})"
            self.latest: dict[str, float] = {}
            self.armed: dict[str, bool] = {}
            return
        tasks = "\n".join(
            f'  - {{name: high_{u}_{m}, when: "unit-{u}/m{m}.v > 50 and unit-{u}/m{m}.v < 90", '
            f'do: [{{log: "high"}}]}}'
            for u in range(units)
            for m in range(modules)
        )
        unit_files = ", ".join(f"unit-{u}: unit-{u}.yaml" for u in range(units))
        text = f"experiment: bench\nunits: {{{unit_files}}}\ntasks:\n{tasks}\n"
        script = parse_script(text, "bench.yaml", births(units, modules))
        # The engine's clock follows the readings, as if they arrived live (they are stamped from a
        # fixed START so that every round has the same data): with the wall clock as `now`, readings
        # stamped hours ago would all be stale and no rule would act.
        self.now = START.timestamp()
        self.engine = Engine(script, run_id="bench-run", started_at=self.now)
        self.Reading = Reading
        self._record(self.engine.start(self.now))
        self.kind = (
            f"hub.controller Engine, {units * modules} `when` tasks (one per module), effects recorded"
        )

    def _record(self, effects: list[Any]) -> None:
        for effect in effects:
            self.sink.effect(effect, self.now, None)
        self.fired += len(effects)

    def on_reading(self, unit: str, module: str, ts: float, values: dict[str, float], seq: int) -> None:
        if self.engine is not None:
            if ts > self.now:
                self.now = ts
            self._record(self.engine.on_reading(self.Reading(unit, module, ts, values, seq), self.now))
            return
        key = f"{unit}/{module}"
        now = 50 < values.get("v", 0.0) < 90
        if now and not self.armed.get(key):
            self.fired += 1
        self.armed[key] = now


def feeder(rec: Recorder, rules: Rules | None) -> DataHandler:
    """The link's data handler (unit and module split from the topic by the link): the recorder."""
    if rules is None:

        def queue(unit: str, module: str, payload: bytes, at: float) -> None:
            rec.ingest_raw(unit, module, "data", payload, at)  # decoded on the writer thread

        return queue

    def feed(unit: str, module: str, payload: bytes, at: float) -> None:
        # One decode for both, as the hub does: the recorder's record feeds the rules.
        record = rec.ingest_bytes(unit, module, "data", payload, at)
        if isinstance(record, DataRecord):
            for point in record.points:
                rules.on_reading(unit, module, point.ts, point.values, record.seq)

    return feed


def direct_feed(rec: Recorder, rules: Rules | None) -> Callable[[str, bytes], None]:
    """`feeder` behind the topic split the link does, for the loop without a broker."""
    split, feed = TOPICS.split, feeder(rec, rules)

    def handle(topic: str, payload: bytes) -> None:
        parts = split(topic)
        if parts is not None:
            feed(parts[0], parts[1], payload, time.time())

    return handle


def recording(
    tmp: Path, name: str, units: int, modules: int, with_rules: bool
) -> tuple[Recorder, Rules | None]:
    rec = Recorder(tmp / name, SystemClock())
    rec.open()
    rec.open_run("bench-run", {"experiment": "bench"}, births(units, modules))
    return rec, Rules(rec, units, modules) if with_rules else None


def direct_rate(tmp: Path, messages: int, units: int, modules: int, with_rules: bool) -> float:
    """The same feed called in a loop, no broker: what the recorder (and the rules) take alone."""
    payloads = messages_for(messages, units, modules)
    rec, rules = recording(tmp, f"hub-direct-{with_rules}", units, modules, with_rules)
    feed = direct_feed(rec, rules)
    t0 = time.perf_counter()
    for topic, payload in payloads:
        feed(topic, payload)
    rec.flush_sync(600)
    elapsed = time.perf_counter() - t0
    rec.close()
    return messages / elapsed


CONSUMERS = ("bare", "link", "recorder", "recorder+rules")


def one_round(port: int, tmp: Path, n: int, messages: int, units: int, modules: int) -> dict[str, Any]:
    """Fill the broker for four fresh sessions; drain one bare, one through the hub's link counting
    only, one through it into a recorder, one with rules too."""
    register(f"bench-bare-{n}", port)
    for name in CONSUMERS[1:]:
        register(HubConfig(link_id(name, n), "", BrokerConfig(), Path()).client_id, port)
    publish(port, messages, units, modules)
    out: dict[str, Any] = {"bare": messages / drain(f"bench-bare-{n}", port, messages, lambda t, p: None)}
    out["link"] = messages / drain_link(link_id("link", n), port, messages, lambda u, m, p, a: None)
    for name in CONSUMERS[2:]:
        rec, rules = recording(tmp, f"hub-{name}-{n}", units, modules, name.endswith("rules"))
        t0 = time.perf_counter()
        drain_link(link_id(name, n), port, messages, feeder(rec, rules))
        rec.flush_sync(600)  # to the last commit of database and files
        out[name] = messages / (time.perf_counter() - t0)
        out["totals"] = rec.stats()["totals"]
        files = sorted((tmp / f"hub-{name}-{n}" / "runs" / "bench-run").rglob("*.csv"))
        out["lines"] = sum(p.read_bytes().count(b"\n") - 1 for p in files)
        out["files"] = len(files)
        out["rules"] = rules
        rec.close()
    return out


def ingest_figures(messages: int, units: int, modules: int, rounds: int) -> None:
    results = []
    with MosquittoProcess() as broker, tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            results.append(one_round(broker.port, Path(tmp), n, messages, units, modules))
        direct = direct_rate(Path(tmp), messages, units, modules, False)
        direct_rules = direct_rate(Path(tmp), messages, units, modules, True)
    rows = [
        (f"round {n + 1}", "   ".join(f"{name} {r[name]:7.0f}/s" for name in CONSUMERS))
        for n, r in enumerate(results)
    ]
    last = results[-1]
    for name in CONSUMERS:
        rows.append(
            (
                name,
                f"median {statistics.median(r[name] for r in results):7.0f} readings/s, "
                f"best {max(r[name] for r in results):.0f}",
            )
        )
    ratio = statistics.median(r["recorder+rules"] / r["bare"] for r in results)
    ratio_plain = statistics.median(r["recorder"] / r["bare"] for r in results)
    ratio_link = statistics.median(r["link"] / r["bare"] for r in results)
    rules_rate = statistics.median(r["recorder+rules"] for r in results)
    totals = last["totals"]
    bare_us = 1e6 / statistics.median(r["bare"] for r in results)
    extra = [f"{n} {1e6 / statistics.median(r[n] for r in results) - bare_us:+.1f} µs" for n in CONSUMERS[1:]]
    rows += [
        ("ratio to bare", f"link {ratio_link:.2f}, recorder {ratio_plain:.2f}, recorder+rules {ratio:.2f} "
                          "(medians)"),
        (
            "without MQTT",
            f"recorder {direct:.0f} readings/s ({1e6 / direct:.1f} µs each), recorder+rules "
            f"{direct_rules:.0f} readings/s ({1e6 / direct_rules:.1f} µs): the same payloads in a loop",
        ),
        ("per message", f"bare paho {bare_us:.1f} µs; on top of it (medians): " + ", ".join(extra)),
        ("rules", f"{last['rules'].kind}; {last['rules'].fired} effects"),
        (
            "stored in database",
            f"{totals['stored']} of {messages} (duplicates {totals['duplicates']}, "
            f"lost {totals['readings_lost']}, bad {totals['bad']})",
        ),
        ("CSV rows", f"{last['lines']} in {last['files']} files"),
        ("target", f"recorder+rules ≥ 20,000 readings/s: {'met' if rules_rate >= 20_000 else 'NOT met'} "
                   f"({rules_rate:,.0f})"),
    ]
    table(
        f"Recorder ingest into database and files, {messages} messages of 1 reading, {units} units x "
        f"{modules} modules, loopback Mosquitto, {rounds} rounds (rates to the last commit)",
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
