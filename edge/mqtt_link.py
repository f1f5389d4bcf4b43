"""The unit's connection to the broker: connect with a will, reconnect with capped backoff.

Everything the unit sends outside the outbox (retained states, birth,
replies) goes through `publish()`; while the broker is unreachable those
are dropped, because they are re-sent whole on the next connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiomqtt

from lecis.clock import Clock
from lecis.mqtt_options import NO_DELAY_SOCKET_OPTIONS
from lecis.unit_config import BrokerConfig

log = logging.getLogger("labedge.link")

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0
MAX_HELD = 1000

OnConnect = Callable[[aiomqtt.Client], Awaitable[list[Coroutine[Any, Any, None]]]]


def next_backoff(current: float) -> float:
    return min(current * 2, MAX_BACKOFF_S)


class BrokerLink:
    """One MQTT session at a time, re-established forever until `stop()`.

    `on_connect(client)` runs after each connection (publish birth and states)
    and returns coroutines that live as long as the connection (the forwarder).
    `on_message(topic, payload)` is called synchronously for every message.
    """

    def __init__(
        self,
        broker: BrokerConfig,
        client_id: str,
        will: aiomqtt.Will,
        subscriptions: list[str],
        on_connect: OnConnect,
        on_message: Callable[[str, bytes], None],
        clock: Clock,
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self.will = will
        self.subscriptions = subscriptions
        self.on_connect = on_connect
        self.on_message = on_message
        self.clock = clock
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._held: list[tuple[str, bytes, bool]] = []  # kept while offline, sent on reconnect

    def _make_client(self) -> aiomqtt.Client:
        tls = None
        if self.broker.tls_ca:
            tls = ssl.create_default_context(cafile=self.broker.tls_ca)
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=self.client_id,
            username=self.broker.username,
            password=self.broker.password,
            will=self.will,
            keepalive=self.broker.keepalive_s,
            timeout=10,
            # The forwarder's window bounds what is in flight; 0 spares paho a scan of its
            # in-flight list on every PUBACK.
            max_inflight_messages=0,
            tls_context=tls,
            clean_session=True,
            socket_options=NO_DELAY_SOCKET_OPTIONS,
        )

    async def run(self) -> None:
        backoff = INITIAL_BACKOFF_S
        while not self._stopping.is_set():
            try:
                async with self._make_client() as client:
                    self.client = client
                    for topic in self.subscriptions:
                        await client.subscribe(topic, qos=1)
                    session = await self.on_connect(client)
                    held, self._held = self._held, []
                    for topic, payload, retain in held:
                        self.publish(topic, payload, retain)
                    self.connected.set()
                    log.info("connected to broker %s:%d", self.broker.host, self.broker.port)
                    backoff = INITIAL_BACKOFF_S
                    await self._serve(client, session)
            except aiomqtt.MqttError as exc:
                if self.connected.is_set():
                    log.warning("lost the broker (%s); readings go to the outbox", exc)
                else:
                    log.warning(
                        "cannot reach broker %s:%d (%s); retrying in %.1f s",
                        self.broker.host, self.broker.port, exc, backoff,
                    )
            finally:
                self.client = None
                self.connected.clear()
            if self._stopping.is_set():
                break
            await self._wait_stop_or(backoff)
            backoff = next_backoff(backoff)

    async def _serve(self, client: aiomqtt.Client, session: list[Coroutine[Any, Any, None]]) -> None:
        async def messages() -> None:
            async for message in client.messages:
                payload = message.payload
                data = payload if isinstance(payload, bytes) else str(payload or "").encode()
                self.on_message(message.topic.value, data)

        tasks = [asyncio.create_task(messages())] + [asyncio.create_task(c) for c in session]
        stop = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in [*tasks, stop]:
                task.cancel()
            await asyncio.gather(*tasks, stop, return_exceptions=True)

    async def _wait_stop_or(self, seconds: float) -> None:
        stop = asyncio.create_task(self._stopping.wait())
        sleep = asyncio.create_task(self.clock.sleep(seconds))
        await asyncio.wait([stop, sleep], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        sleep.cancel()

    def publish(self, topic: str, payload: bytes, retain: bool = False, hold: bool = False) -> None:
        """Send QoS 1 if connected; order of calls is the order on the wire.

        Offline, the message is dropped (states are re-sent whole on reconnect)
        unless `hold`: then it waits in memory, up to MAX_HELD, for the next connection.
        """
        client = self.client
        if client is None:
            if hold and len(self._held) < MAX_HELD:
                self._held.append((topic, payload, retain))
            return
        task = asyncio.create_task(self._publish(client, topic, payload, retain))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    @staticmethod
    async def _publish(client: aiomqtt.Client, topic: str, payload: bytes, retain: bool) -> None:
        try:
            await client.publish(topic, payload, qos=1, retain=retain)
        except aiomqtt.MqttError as exc:
            log.debug("publish to %s not confirmed: %s", topic, exc)

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait until every publish so far is confirmed by the broker (or timeout)."""
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=timeout)

    def stop(self) -> None:
        self._stopping.set()
