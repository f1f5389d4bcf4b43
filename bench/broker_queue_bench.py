"""A large backlog replayed while the hub's persistent session is offline: does the broker keep it all?

Run: `.venv/bin/python -m bench.broker_queue_bench [--messages 150000]`. For each broker
configuration (the queue limit derived from the outbox size, and the old fixed
100,000), a fresh Mosquitto; the hub's persistent session subscribes and leaves;
the forwarder replays an outbox of `--messages` readings until the broker has
confirmed every one; then the hub comes back and counts what it receives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import psutil

from bench.stats import table
from edge.forwarder import Forwarder
from edge.outbox import Outbox
from lecis.mqtt_session import Connection, MqttSession, SessionConfig
from lecis.topics import Topics
from lecis.unit_config import OutboxConfig
from provisioning.broker import MosquittoProcess, queued_messages_for

HUB = "bench-hub-recorder"
OLD_LIMIT = 100_000


async def replay(port: int, outbox: Outbox) -> float:
    forwarder = Forwarder(outbox, Topics(), "u1")

    async def on_connect(connection: Connection) -> list[Coroutine[Any, Any, None]]:
        return [forwarder.run(connection)]

    start = time.perf_counter()
    async with MqttSession(SessionConfig(port=port, client_id="labedge-unit-u1"), on_connect=on_connect):
        while outbox.count():
            await asyncio.sleep(0.05)
    return time.perf_counter() - start


async def receive(port: int, expected: int) -> tuple[int, int]:
    """Messages the hub's session gets once back, and whether their seqs were 1..n in order."""
    seqs: list[int] = []
    changed = asyncio.Event()

    def on_message(topic: str, payload: bytes) -> None:
        seqs.append(json.loads(payload)["seq"])
        changed.set()

    hub = SessionConfig(port=port, client_id=HUB, clean_session=False)
    async with MqttSession(hub, subscriptions=[Topics().module_filter("u1", "data")], on_message=on_message):
        while len(seqs) < expected:
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), 3.0)
            except TimeoutError:
                break  # the broker has nothing more queued
    in_order = sum(1 for i, seq in enumerate(seqs) if seq == i + 1)
    return len(seqs), in_order


async def run(tmp: Path, messages: int, max_queued: int) -> tuple[int, int, float, float]:
    with MosquittoProcess(max_queued=max_queued) as broker:
        hub = SessionConfig(port=broker.port, client_id=HUB, clean_session=False)
        async with MqttSession(hub, subscriptions=[Topics().module_filter("u1", "data")]):
            pass
        with Outbox(tmp / f"outbox-{max_queued}.sqlite3", max_messages=max(messages, 1000)) as outbox:
            for i in range(messages):
                outbox.append("ph1", "data", {"readings": [{"ts": "2026-11-21T15:04:05.123Z",
                                                             "values": {"ph": i % 1000}}]})
            outbox.flush(timeout=600)
            seconds = await replay(broker.port, outbox)
        assert broker.proc is not None
        queued_mb = psutil.Process(broker.proc.pid).memory_info().rss / 2**20  # holding the queue
        got, in_order = await receive(broker.port, messages)
    return got, in_order, seconds, queued_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=150_000)
    args = parser.parse_args()
    derived = queued_messages_for(OutboxConfig().max_messages)
    rows = []
    with tempfile.TemporaryDirectory() as name:
        for label, limit in ((f"derived from the outbox ({derived:,})", derived),
                             (f"old fixed limit ({OLD_LIMIT:,})", OLD_LIMIT)):
            got, in_order, seconds, queued_mb = asyncio.run(run(Path(name), args.messages, limit))
            lost = args.messages - got
            rows.append((f"max_queued_messages {label}",
                         f"received {got:,} of {args.messages:,} (lost {lost:,}; seq 1..n in order: "
                         f"{in_order:,}); replay {seconds:.1f} s; broker RSS {queued_mb:.0f} MB"))
    table(f"{args.messages:,} readings replayed while the hub's persistent session is away", rows)


if __name__ == "__main__":
    main()
