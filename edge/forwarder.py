"""Drains the outbox to the broker: backlog first (hist true), then live data, in append order.

One `run()` per MQTT connection (a `lecis.mqtt_session.Connection`, whose
`closed` future tells when it ends). Publishes are QoS 1 and issued in id order
on that one connection, so each module's seqs reach the broker in order; up to
`window` are awaiting their PUBACK at once. Only messages the outbox has
committed are sent, and one leaves the outbox only after its PUBACK; whatever is
unconfirmed when the connection drops is sent again on the next one (the hub
ignores repeated seqs).
"""

from __future__ import annotations

import asyncio
import functools
import math

from edge.outbox import Outbox, OutboxMessage
from lecis.errors import SettingInvalid
from lecis.mqtt_session import Connection, ConnectionClosed
from lecis.topics import Topics


class Forwarder:
    """Sends what `outbox` holds for unit `unit`; woken by each commit of the outbox."""

    def __init__(self, outbox: Outbox, topics: Topics, unit: str, window: int = 200,
                 ack_batch: int = 500) -> None:
        if window < 1:
            raise SettingInvalid(f"forwarder window must be at least 1, got {window}")
        self.outbox = outbox
        self.topics = topics
        self.unit = unit
        self.window = window
        self.ack_batch = ack_batch
        self._wake = asyncio.Event()
        self._topic_cache: dict[tuple[str, str], str] = {}
        outbox.watch(self.notify)

    def notify(self) -> None:
        """Something was appended or committed: wake the drain if it is waiting."""
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

    async def run(self, connection: Connection) -> None:
        """Forward until the connection ends; raises ConnectionClosed when it does."""
        client = connection.client
        closed = connection.closed
        hist_until = self.outbox.max_id()  # everything stored before this connection is backlog
        loop = asyncio.get_running_loop()
        low_water = self.window // 2
        inflight: set[asyncio.Task[None]] = set()
        acked: list[int] = []
        failures: list[BaseException] = []
        cursor = 0

        def settled(msg_id: int, task: asyncio.Task[None]) -> None:
            inflight.discard(task)
            if task.cancelled():
                return
            exc = task.exception()
            if exc is not None:
                failures.append(exc)
                self._wake.set()
                return
            acked.append(msg_id)
            # Refill in large steps rather than one query per PUBACK.
            if len(inflight) <= low_water:
                self._wake.set()

        try:
            while True:
                if failures:
                    raise ConnectionClosed(f"publish not confirmed: {failures[0]}") from failures[0]
                connection.raise_if_closed()
                self._wake.clear()
                batch: list[OutboxMessage] = []
                if len(inflight) <= low_water:
                    batch = await self.outbox.fetch(cursor, self.window - len(inflight))
                    connection.raise_if_closed()
                    for msg in batch:
                        # Tasks start in creation order, and each one hands its message to the
                        # client in its first step, so publishes go out in id order.
                        payload = msg.payload(msg.id <= hist_until)
                        # The connection's end is watched below, so a PUBACK wait never times out.
                        task = loop.create_task(client.publish(self._topic(msg.module, msg.kind), payload,
                                                               qos=1, timeout=math.inf))
                        inflight.add(task)
                        task.add_done_callback(functools.partial(settled, msg.id))
                    if batch:
                        cursor = batch[-1].id
                if len(acked) >= self.ack_batch or (acked and not batch):
                    self.outbox.ack(acked)
                    acked.clear()
                if batch and len(inflight) <= low_water:
                    continue  # more is committed than the window took: fetch again at once
                await self._wait(closed)
        finally:
            for task in inflight:
                task.cancel()
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)
            if acked:
                self.outbox.ack(acked)

    async def _wait(self, closed: asyncio.Future[None]) -> None:
        if self._wake.is_set():
            return
        wake = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((wake, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()
