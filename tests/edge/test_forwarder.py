"""The forwarder against a real Mosquitto: backlog in order as hist, then live data; outages lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.forwarder import Forwarder
from edge.outbox import Outbox
from lecis.mqtt_session import Connection, MqttSession, SessionConfig
from lecis.payloads import check_data, check_event
from lecis.topics import Topics
from provisioning.broker import MosquittoProcess, find_mosquitto

UNIT = "u1"
TS = "2026-11-21T15:04:05.123Z"


@pytest.fixture
def broker() -> Iterator[MosquittoProcess]:
    """Mosquitto with persistence and no queue limit, so a restart keeps what it queued for us."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is missing; `make test` installs it")
    with MosquittoProcess(persistence=True, max_queued=0) as running_broker:
        yield running_broker


class Received:
    """A persistent-session subscriber (paho, own thread) recording every data and event message.

    paho acknowledges a message only after `on_message` has recorded it, so a broker
    outage cannot make this subscriber miss one.
    """

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-hub",
                                   clean_session=False)
        self._client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]  # seconds, fractions work
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *args: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("test subscriber got no SUBACK")

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe(f"lab/{UNIT}/#", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append((message.topic, json.loads(message.payload)))
            self._changed.notify_all()

    async def until(self, condition: Callable[[], bool], timeout: float = 20.0) -> None:
        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(condition, timeout)

        if not await asyncio.to_thread(wait):
            raise AssertionError(f"condition not met in {timeout} s; received {len(self.messages)}")

    def by_module(self, leaf: str = "data") -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for topic, payload in list(self.messages):
            _, _, module, kind = topic.split("/")
            if kind == leaf:
                out.setdefault(module, []).append(payload)
        return out

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """For state of this process (the outbox), which no subscriber callback announces."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s")
        await asyncio.sleep(0.01)


def reading(value: float) -> dict[str, object]:
    return {"readings": [{"ts": TS, "values": {"ph": value}}]}


def deduped_seqs(payloads: list[dict[str, Any]]) -> list[int]:
    """What the hub keeps: a seq not above the last one seen is a repeat."""
    kept: list[int] = []
    for payload in payloads:
        if not kept or payload["seq"] > kept[-1]:
            kept.append(payload["seq"])
    return kept


async def forward_forever(forwarder: Forwarder, port: int) -> None:
    """What the unit's broker link does: the forwarder on each connection of a reconnecting session."""
    async def on_connect(connection: Connection) -> list[Coroutine[Any, Any, None]]:
        return [forwarder.run(connection)]

    config = SessionConfig(port=port, client_id="labedge-unit-u1", initial_backoff_s=0.05,
                           max_backoff_s=0.2)
    await MqttSession(config, on_connect=on_connect).run()


@contextlib.asynccontextmanager
async def running(forwarder: Forwarder, port: int) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(forward_forever(forwarder, port))
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_backlog_arrives_in_order_as_hist_then_live_data(broker: MosquittoProcess,
                                                               tmp_path: Path) -> None:
    received = Received(broker.port)
    try:
        with Outbox(tmp_path / "outbox.sqlite3") as outbox:
            for i in range(300):
                outbox.append("ph1" if i % 3 else "do1", "data", reading(i))
                if i == 150:
                    outbox.append("ph1", "event", {"ts": TS, "level": "alarm", "code": "outbox_full",
                                                   "message": "dropped 0"})
            forwarder = Forwarder(outbox, Topics(), UNIT, window=20)
            async with running(forwarder, broker.port):
                await received.until(lambda: len(received.messages) == 301)
                for i in range(5):
                    outbox.append("ph1", "data", reading(100 + i))
                    forwarder.notify()
                await received.until(lambda: len(received.messages) == 306)
                await eventually(lambda: outbox.count() == 0)

        data = received.by_module("data")
        events = received.by_module("event")
        assert [p["seq"] for p in data["do1"]] == list(range(1, 101))
        assert [p["seq"] for p in events["ph1"]] == [101]  # after ph1's first 100 readings
        assert [p["seq"] for p in data["ph1"]] == [s for s in range(1, 207) if s != 101]
        assert all(p["hist"] is True for p in data["do1"] + data["ph1"][:200] + events["ph1"])
        assert [p["hist"] for p in data["ph1"][200:]] == [False] * 5
        assert all(check_data(p) == [] for p in data["do1"] + data["ph1"])
        assert check_event(events["ph1"][0]) == []
        ph1 = [p["seq"] for topic, p in received.messages if "/ph1/" in topic]
        assert ph1 == list(range(1, 207))  # data and events of a module interleave in seq order
    finally:
        received.close()


async def test_broker_restart_mid_drain_loses_nothing(broker: MosquittoProcess, tmp_path: Path) -> None:
    received = Received(broker.port)
    total = 3000
    try:
        with Outbox(tmp_path / "outbox.sqlite3") as outbox:
            for i in range(total):
                outbox.append(("ph1", "do1")[i % 2], "data", reading(i))
            forwarder = Forwarder(outbox, Topics(), UNIT, window=50)
            async with running(forwarder, broker.port):
                await received.until(lambda: len(received.messages) >= 300)
                broker.stop()
                got_before_outage = len(received.messages)
                for i in range(100):  # the unit keeps measuring while the broker is away
                    outbox.append(("ph1", "do1")[i % 2], "data", reading(i))
                    forwarder.notify()
                broker.start()
                expected = list(range(1, (total + 100) // 2 + 1))
                await received.until(
                    lambda: all(deduped_seqs(received.by_module().get(m, [])) == expected
                                for m in ("ph1", "do1")),
                    timeout=30,
                )
                await eventually(lambda: outbox.count() == 0)

        assert got_before_outage < total, "the outage must interrupt the drain"
        for module in ("ph1", "do1"):
            payloads = received.by_module()[module]
            assert deduped_seqs(payloads) == expected
            assert all(p["hist"] is True for p in payloads)  # all of it was stored before a connection
    finally:
        received.close()
