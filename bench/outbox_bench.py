"""Outbox and forwarder figures: append rate, backlog replay rate against bare paho, a large backlog.

Run: `.venv/bin/python -m bench.outbox_bench [--messages N]`. Every rate is end to end:
a message counts once a separate subscriber (mosquitto_sub) has received it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.forwarder import Forwarder
from edge.outbox import Outbox
from lecis.mqtt_session import MqttSession, SessionConfig
from lecis.topics import Topics
from provisioning.broker import MosquittoProcess

UNIT = "bench"
MODULES = ("ph1", "do1", "temp1")
PROBE_TOPIC = "lab/bench-probe"
# paho's own in-flight limit (default 20), lifted the same way for both publishers: 0 is none,
# which also spares paho a scan of its in-flight messages on every PUBACK. The forwarder's
# window is then its only limit; bare paho is held only by PAHO_QUEUE.
PAHO_INFLIGHT = 0
# TCP_NODELAY off for the forwarder as for bare paho (its default): both let Nagle coalesce
# back-to-back publishes. The unit itself runs with it on (ESTOP latency); row 2b shows that.
NODELAY = False
PAHO_QUEUE = 20_000  # most publishes bare paho may have awaiting a PUBACK (queued or in flight)
TARGETS = {"append": 5_000.0, "ratio": 0.5, "disk_mb": 200.0}


def reading_body(i: int) -> dict[str, object]:
    return {"readings": [{"ts": "2026-11-21T15:04:05.123Z", "values": {"ph": 7.0 + (i % 1000) / 1000}}]}


def fill(outbox: Outbox, n: int) -> tuple[float, float]:
    """Append n readings round-robin over the modules.

    Returns readings per second committed to the file (appends until the writer
    thread has committed the last one), and per second of append() calls alone
    (what the event loop spends).
    """
    start = time.perf_counter()
    for i in range(n):
        outbox.append(MODULES[i % len(MODULES)], "data", reading_body(i))
    returned = time.perf_counter()
    if not outbox.flush(timeout=600):
        raise SystemExit("the outbox did not commit the appends")
    return n / (time.perf_counter() - start), n / (returned - start)


class SubscriberCount:
    """A mosquitto_sub on every unit topic, counting received messages from its output."""

    def __init__(self, port: int) -> None:
        self._proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-F", "%t",
             "-t", f"lab/{UNIT}/#", "-t", PROBE_TOPIC],
            stdout=subprocess.PIPE,
        )
        self.count = 0
        self._probed = threading.Event()
        self._changed = threading.Condition()
        self.reached_at = 0.0
        self._target = -1
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._wait_subscribed(port)

    def _read(self) -> None:
        assert self._proc.stdout is not None
        tail = b""
        while chunk := os.read(self._proc.stdout.fileno(), 1 << 16):
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            lines, tail = data[:cut], data[cut:]
            probes = lines.count(b"probe\n")
            if probes:
                self._probed.set()
            with self._changed:
                self.count += lines.count(b"\n") - probes
                if self._target >= 0 and self.count >= self._target and not self.reached_at:
                    self.reached_at = time.perf_counter()
                self._changed.notify_all()
            # mosquitto_sub flushes every line; reading them one by one would take the
            # GIL from the publisher under test thousands of times a second.
            time.sleep(0.01)

    def _wait_subscribed(self, port: int) -> None:
        probe = mqtt.Client(CallbackAPIVersion.VERSION2)
        probe.connect("127.0.0.1", port)
        probe.loop_start()
        try:
            deadline = time.monotonic() + 10
            while not self._probed.wait(0.05):
                if time.monotonic() > deadline:
                    raise SystemExit("mosquitto_sub did not subscribe within 10 s")
                probe.publish(PROBE_TOPIC, b"x", qos=1)
        finally:
            probe.disconnect()
            probe.loop_stop()

    def expect(self, n: int) -> None:
        """Start a measurement: `wait()` returns once n more messages have arrived."""
        with self._changed:
            self._target = self.count + n
            self.reached_at = 0.0

    def wait(self, timeout: float = 300.0) -> float:
        """perf_counter() instant the expected messages had all arrived."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.reached_at > 0, timeout):
                raise SystemExit(f"subscriber got {self.count} of {self._target} messages in {timeout:.0f} s")
            return self.reached_at

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=5)


async def _drain(outbox: Outbox, port: int, sub: SubscriberCount, window: int, nodelay: bool) -> float:
    forwarder = Forwarder(outbox, Topics(), UNIT, window=window)
    n = outbox.count()
    config = SessionConfig(port=port, client_id="bench-forwarder", max_inflight=PAHO_INFLIGHT,
                           tcp_nodelay=nodelay)
    async with MqttSession(config) as session:
        connection = session.require()
        sub.expect(n)
        start = time.perf_counter()
        task = asyncio.create_task(forwarder.run(connection))
        end = await asyncio.to_thread(sub.wait)
        while outbox.count() and not task.done():  # the last acks follow the last PUBACKs
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    if outbox.count():
        raise SystemExit(f"forwarder left {outbox.count()} messages unacknowledged")
    return end - start


def drain(outbox: Outbox, port: int, sub: SubscriberCount, window: int, nodelay: bool = NODELAY) -> float:
    """Seconds to send everything in `outbox` with the forwarder, received by `sub`."""
    return asyncio.run(_drain(outbox, port, sub, window, nodelay))


def bare_paho(port: int, sub: SubscriberCount, messages: Sequence[tuple[str, bytes]]) -> float:
    """Seconds for plain paho (own network thread) to send `messages` at QoS 1, received by `sub`."""
    # paho's message ids are 16 bits: more than 65,535 unconfirmed publishes would
    # overwrite each other in its queue, so the publishing loop stays well below that.
    room = threading.Semaphore(PAHO_QUEUE)
    confirmed = threading.Event()
    acks = 0

    def on_publish(client: mqtt.Client, userdata: object, mid: int, rc: object, props: object) -> None:
        nonlocal acks
        acks += 1
        room.release()
        if acks == len(messages):
            confirmed.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho")
    client.max_inflight_messages_set(PAHO_INFLIGHT)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        sub.expect(len(messages))
        start = time.perf_counter()
        for topic, payload in messages:
            room.acquire()
            client.publish(topic, payload, qos=1)
        end = sub.wait()
        if not confirmed.wait(60):
            raise SystemExit(f"paho got {acks} of {len(messages)} PUBACKs")
        return end - start
    finally:
        client.disconnect()
        client.loop_stop()


def _row(name: str, value: str, target: str = "", verdict: str = "") -> str:
    return f"  {name:<44} {value:>16}  {target:>12}  {verdict}"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "BELOW TARGET"


def compare_replay(tmp: Path, port: int, sub: SubscriberCount, sample: int, window: int,
                   repeat: int) -> tuple[float, float, int]:
    """Best-of-`repeat` seconds for the forwarder and for bare paho, runs interleaved; and payload size."""
    topics = Topics()
    fwd_best = paho_best = float("inf")
    rendered: list[tuple[str, bytes]] = []
    for run in range(repeat):
        with Outbox(tmp / f"replay{run}.sqlite3") as outbox:
            fill(outbox, sample)
            rendered = [(topics.data(UNIT, m.module), m.payload(True)) for m in outbox.pending(0, sample)]
            fwd_best = min(fwd_best, drain(outbox, port, sub, window))
        paho_best = min(paho_best, bare_paho(port, sub, rendered))
    return fwd_best, paho_best, len(rendered[0][1])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox_bench", description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000,
                        help="backlog size for the large-backlog figures (default 1,000,000)")
    parser.add_argument("--sample", type=int, default=100_000,
                        help="messages for the append and replay comparisons (default 100,000; "
                             "never more than --messages)")
    parser.add_argument("--window", type=int, default=200, help="forwarder publishes in flight (default 200)")
    parser.add_argument("--repeat", type=int, default=2, help="replay comparison runs, best kept (default 2)")
    args = parser.parse_args(argv)
    n = max(args.messages, 1)
    sample = max(min(args.sample, n), 1)
    print(f"labedge outbox bench: {sample:,} messages per comparison (best of {args.repeat}), "
          f"backlog of {n:,}; forwarder window {args.window}, bare paho up to {PAHO_QUEUE:,} "
          f"unconfirmed; paho max_inflight {PAHO_INFLIGHT or 'unlimited'} in both")
    with tempfile.TemporaryDirectory(prefix="labedge-outbox-bench-") as tmp, \
            MosquittoProcess(max_queued=0) as broker:
        sub = SubscriberCount(broker.port)
        try:
            with Outbox(Path(tmp) / "append.sqlite3") as outbox:
                append_rate, call_rate = fill(outbox, sample)
            fwd_s, paho_s, size = compare_replay(Path(tmp), broker.port, sub, sample, args.window,
                                                 max(args.repeat, 1))
            with Outbox(Path(tmp) / "backlog.sqlite3", max_messages=n) as outbox:
                big_append_rate, _ = fill(outbox, n)
                outbox.sync()
                outbox.flush()
                disk_mb = outbox.disk_bytes() / 1e6
                big_s = drain(outbox, broker.port, sub, args.window)
        finally:
            sub.close()
    fwd_rate, paho_rate = sample / fwd_s, sample / paho_s
    ratio = fwd_rate / paho_rate
    disk_target = TARGETS["disk_mb"] * n / 1_000_000  # 200 MB per million, scaled for quick runs
    print()
    print(_row("figure", "measured", "target", ""))
    print(_row(f"1. append, {sample:,} readings over {len(MODULES)} modules", f"{append_rate:,.0f} /s",
               f">= {TARGETS['append']:,.0f}", _verdict(append_rate >= TARGETS["append"])))
    print(_row("   (committed to the file; append() calls alone)", f"{call_rate:,.0f} /s"))
    print(_row(f"2. replay via forwarder ({size} B payloads)", f"{fwd_rate:,.0f} msg/s"))
    print(_row("   replay via bare paho, same messages", f"{paho_rate:,.0f} msg/s"))
    print(_row("   ratio forwarder / paho", f"{ratio:.2f}", f">= {TARGETS['ratio']}",
               _verdict(ratio >= TARGETS["ratio"])))
    print(_row(f"3. backlog of {n:,}: append", f"{big_append_rate:,.0f} /s"))
    print(_row("   size on disk (database + WAL)", f"{disk_mb:,.1f} MB", f"< {disk_target:,.1f}",
               _verdict(disk_mb < disk_target)))
    print(_row("   bytes per message on disk", f"{disk_mb * 1e6 / n:,.0f} B"))
    print(_row("   drain to the broker", f"{big_s:,.1f} s"))
    print(_row("   drain rate", f"{n / big_s:,.0f} msg/s"))


if __name__ == "__main__":
    main()
