"""The test rig: a contract-checking MQTT subscriber and helpers to run units."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt

from lecis.payloads import CHECKS_BY_LEAF
from lecis.topics import Topics


@dataclass
class Seen:
    topic: str
    payload: Any
    retain: bool
    at: float


class Probe:
    """Collects every message under a root and checks each against the contract types."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self.messages: list[Seen] = []
        self.violations: list[str] = []
        self._changed = asyncio.Event()

    def feed(self, topic: str, raw: bytes, retain: bool) -> None:
        try:
            payload = json.loads(raw) if raw else None
        except (ValueError, RecursionError):  # hostile traffic seen on the wire
            self.violations.append(f"{topic}: payload is not JSON: {raw[:80]!r}")
            return
        parts = self.topics.split(topic)
        # `lab/hub/...` matches unit patterns (`lab/hub/$state`) but is the hub's own, with its own shapes.
        if parts is not None and payload is not None and parts[0] != "hub":
            leaf = parts[1] if parts[1].startswith("$") else parts[2]
            check = CHECKS_BY_LEAF.get(leaf)
            if check is not None:
                self.violations += [f"{topic}: {p}" for p in check(payload)]
        self.messages.append(Seen(topic, payload, retain, time.monotonic()))
        self._changed.set()

    def on(self, topic: str) -> list[Any]:
        return [m.payload for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Any:
        found = self.on(topic)
        return found[-1] if found else None

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.25))

    def seqs(self, unit: str, module: str, leaf: str = "data") -> list[int]:
        topic = {"data": self.topics.data, "event": self.topics.event}[leaf](unit, module)
        return [m.payload["seq"] for m in self.messages if m.topic == topic]

    def module_state(self, unit: str, module: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.last(self.topics.module_state(unit, module))
        return result


@contextlib.asynccontextmanager
async def probe(host: str, port: int, topics: Topics | None = None, pattern: str | None = None,
                persistent: bool = False) -> AsyncIterator[Probe]:
    """A subscriber to `pattern` (default: everything under the root).

    `persistent=True` keeps a broker session (QoS 1 messages queue while it is
    away) and reconnects by itself, so it sees everything across broker restarts.
    """
    topics = topics or Topics()
    found = Probe(topics)
    identifier = f"probe-{uuid.uuid4().hex[:8]}"
    connected = asyncio.Event()

    async def pump() -> None:
        while True:
            try:
                client = aiomqtt.Client(host, port, identifier=identifier,
                                        clean_session=not persistent, keepalive=5)
                async with client:
                    await client.subscribe(pattern or topics.all_filter(), qos=1)
                    connected.set()
                    async for message in client.messages:
                        raw = message.payload if isinstance(message.payload, bytes) else b""
                        found.feed(message.topic.value, raw, bool(message.retain))
            except aiomqtt.MqttError:
                if not persistent:
                    raise
                await asyncio.sleep(0.2)

    task = asyncio.create_task(pump())
    try:
        async with asyncio.timeout(10):
            await connected.wait()
        yield found
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task
