"""Drains the outbox to the broker: backlog first (hist true), then live data, in append order.

One `run()` per MQTT connection. Publishes are QoS 1 and issued in id order on
that one connection, so each module's seqs reach the broker in order; up to
`window` are awaiting their PUBACK at once. A message leaves the outbox only
after its PUBACK; whatever is unconfirmed when the connection drops is sent
again on the next one (the hub ignores repeated seqs).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import aiomqtt

from edge.outbox import Outbox, OutboxMessage
from lecis.topics import Topics


class Forwarder:
    """Sends what `outbox` holds for unit `unit`; call `notify()` after each append."""

    def __init__(self, outbox: Outbox, topics: Topics, unit: str, window: int = 200,
                 ack_batch: int = 500) -> None:
        if window < 1:
            raise ValueError(f"forwarder window must be at least 1, got {window}")
        self.outbox = outbox
        self.topics = topics
        self.unit = unit
        self.window = window
        self.ack_batch = ack_batch
        self._wake = asyncio.Event()
        self._topic_cache: dict[tuple[str, str], str] = {}

    def notify(self) -> None:
        """Something was appended: wake the drain if it is waiting."""
        self._wake.set()

    def _topic(self, module: str, kind: str) -> str:
        key = (module, kind)
        topic = self._topic_cache.get(key)
        if topic is None:
            if kind == "data":
                topic = self.topics.data(self.unit, module)
            else:
                topic = self.topics.event(self.unit, module)
            self._topic_cache[key] = topic
        return topic

    async def run(self, client: aiomqtt.Client) -> None:
        """Forward until the connection fails; raises aiomqtt.MqttError when it does."""
        hist_until = self.outbox.max_id()  # everything stored before this connection is backlog
        # aiomqtt 2.5 has no public awaitable for the end of a connection; its own message
        # iterator waits on this future, and so does the forwarder, to stop at once.
        closed: asyncio.Future[Any] | None = getattr(client, "_disconnected", None)
        # Without a way to see the connection close, a PUBACK wait must time out by itself.
        timeout = math.inf if closed is not None else None
        # aiomqtt warns about every publish beyond this many awaiting their PUBACK.
        client.pending_calls_threshold = max(client.pending_calls_threshold, 2 * self.window)
        loop = asyncio.get_running_loop()
        low_water = self.window // 2
        inflight: set[asyncio.Task[int]] = set()
        acked: list[int] = []
        failures: list[BaseException] = []
        cursor = 0

        def settled(task: asyncio.Task[int]) -> None:
            inflight.discard(task)
            if task.cancelled():
                return
            exc = task.exception()
            if exc is not None:
                failures.append(exc)
                self._wake.set()
                return
            acked.append(task.result())
            # Refill in large steps rather than one query per PUBACK.
            if len(inflight) <= low_water:
                self._wake.set()

        async def send(msg: OutboxMessage, topic: str, payload: bytes) -> int:
            await client.publish(topic, payload, qos=1, timeout=timeout)
            return msg.id

        try:
            while True:
                if failures:
                    raise failures[0]
                if closed is not None and closed.done():
                    raise aiomqtt.MqttError("connection to the broker closed") from _cause(closed)
                self._wake.clear()
                batch: list[OutboxMessage] = []
                if len(inflight) <= low_water:
                    batch = self.outbox.pending(cursor, self.window - len(inflight))
                    for msg in batch:
                        # Tasks start in creation order, and each one hands its message to the
                        # client in its first step, so publishes go out in id order.
                        payload = msg.payload(msg.id <= hist_until)
                        task = loop.create_task(send(msg, self._topic(msg.module, msg.kind), payload))
                        inflight.add(task)
                        task.add_done_callback(settled)
                    if batch:
                        cursor = batch[-1].id
                if len(acked) >= self.ack_batch or (acked and not batch):
                    self.outbox.ack(acked)
                    acked.clear()
                await self._wait(closed)
        finally:
            for task in inflight:
                task.cancel()
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)
            if acked:
                self.outbox.ack(acked)

    async def _wait(self, closed: asyncio.Future[Any] | None) -> None:
        if closed is None:
            await self._wake.wait()
            return
        wake = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((wake, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()


def _cause(closed: asyncio.Future[Any]) -> BaseException | None:
    return None if closed.cancelled() else closed.exception()
