"""The unit's connection to the broker: a `lecis.mqtt_session.MqttSession` with the unit's will.

Everything the unit sends outside the outbox (retained states, birth,
replies) goes through `publish()`; while the broker is unreachable those
are dropped, because they are re-sent whole on the next connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import aiomqtt

from lecis.clock import Clock
from lecis.mqtt_session import Connection, ConnectionClosed, MqttSession, OnConnect, SessionConfig
from lecis.unit_config import BrokerConfig

log = logging.getLogger("labedge.link")

MAX_HELD = 1000

__all__ = ["BrokerLink", "Connection", "OnConnect", "session_config"]


def session_config(broker: BrokerConfig, client_id: str) -> SessionConfig:
    return SessionConfig(host=broker.host, port=broker.port, client_id=client_id, username=broker.username,
                         password=broker.password, tls_ca=broker.tls_ca, keepalive_s=broker.keepalive_s)


class BrokerLink:
    """One MQTT session at a time, re-established forever until `stop()`.

    `on_connect(connection)` runs after each connection (publish birth and states)
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
        self.on_connect = on_connect
        self._inflight: set[asyncio.Task[None]] = set()
        self._held: list[tuple[str, bytes, bool]] = []  # kept while offline, sent on reconnect
        self.session = MqttSession(session_config(broker, client_id), will=will, subscriptions=subscriptions,
                                   on_message=on_message, on_connect=self._connected, clock=clock)
        self.connected = self.session.connected

    @property
    def connection(self) -> Connection | None:
        return self.session.connection

    async def _connected(self, connection: Connection) -> list[Coroutine[Any, Any, None]]:
        tasks = list(await self.on_connect(connection))
        held, self._held = self._held, []
        for topic, payload, retain in held:
            self._send(connection, topic, payload, retain)
        return tasks

    async def run(self) -> None:
        await self.session.run()

    def publish(self, topic: str, payload: bytes, retain: bool = False, hold: bool = False) -> None:
        """Send QoS 1 if connected; order of calls is the order on the wire.

        Offline, the message is dropped (states are re-sent whole on reconnect)
        unless `hold`: then it waits in memory, up to MAX_HELD, for the next connection.
        """
        connection = self.session.connection
        if connection is None or connection.is_closed:
            if hold and len(self._held) < MAX_HELD:
                self._held.append((topic, payload, retain))
            return
        self._send(connection, topic, payload, retain)

    def _send(self, connection: Connection, topic: str, payload: bytes, retain: bool) -> None:
        task = asyncio.create_task(self._publish(connection, topic, payload, retain))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    @staticmethod
    async def _publish(connection: Connection, topic: str, payload: bytes, retain: bool) -> None:
        try:
            await connection.publish(topic, payload, qos=1, retain=retain)
        except ConnectionClosed as exc:
            log.debug("publish to %s not confirmed: %s", topic, exc)

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait until every publish so far is confirmed by the broker (or timeout)."""
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=timeout)

    def stop(self) -> None:
        self.session.stop()
