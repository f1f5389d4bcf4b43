"""The hub's MQTT session: every unit's messages in, decoded at the boundary; the hub's state out.

A persistent session (fixed client id `labedge-hub-<id>`, clean_session false,
QoS 1 subscriptions) so the broker queues what units publish while the hub
restarts, and delivers it on reconnect. `lab/hub/$state` is retained
`{online: true}` while connected, with a will of `online: false`.

Every message is decoded with `lecis.wire` here; one that does not fit the
contract is logged (once per topic kind and episode) and counted in
`stats`, and never reaches the recorder or the controller. A handler that
raises is logged and counted too: the link goes on (docs/protocol.md, Hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

import aiomqtt

from hub.config import HubConfig
from hub.mqtt_transport import PahoTransport
from hub.next_turn import NextTurn
from lecis.clock import Clock, SystemClock, iso_ts
from lecis.errors import WireFormatError
from lecis.mqtt_options import NO_DELAY_SOCKET_OPTIONS
from lecis.mqtt_session import Connection, ConnectionClosed, MqttSession, SessionConfig
from lecis.topics import HUB_SEGMENT, Topics
from lecis.wire import Birth, Button, Data, Event, HubState, ModuleState, UnitState, encode, from_bytes

log = logging.getLogger("labedge.hub.link")

#: The leaves the hub subscribes to for every module of every unit, and for every unit.
MODULE_LEAVES = ("data", "event", "state", "reply")
UNIT_LEAVES = ("$state", "$birth", "$reply", "$button")


def _ignore(*_: Any) -> None:
    return None


@dataclass
class LinkHandlers:
    """Where decoded messages go. `payload` is the decoded JSON object, `received_at` epoch seconds."""

    data: Callable[[str, str, Data, dict[str, Any], float], None] = _ignore
    event: Callable[[str, str, Event, dict[str, Any], float], None] = _ignore
    module_state: Callable[[str, str, ModuleState, dict[str, Any], float], None] = _ignore
    unit_state: Callable[[str, UnitState], None] = _ignore
    birth: Callable[[str, Birth], None] = _ignore
    reply: Callable[[str, bytes], None] = _ignore  # raw: UnitClient.feed reads it
    hub_command: Callable[[bytes], None] = _ignore  # raw: the handler answers bad commands itself
    button: Callable[[str, Button], None] = _ignore  # a unit's start/stop button (the session log)
    # When set, data payloads come here raw instead of to `data`: the handler decodes each once
    # (for the recorder and the controller) and raises WireFormatError for one the codec refuses.
    data_bytes: Callable[[str, str, bytes, float], None] | None = None
    connected: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def session_config(config: HubConfig) -> SessionConfig:
    broker = config.broker
    return SessionConfig(host=broker.host, port=broker.port, client_id=config.client_id, clean_session=False,
                         username=broker.username, password=broker.password, tls_ca=broker.tls_ca,
                         keepalive_s=broker.keepalive_s)


class QuickSession(MqttSession):
    """An MqttSession on `hub.mqtt_transport.PahoTransport` instead of aiomqtt, for the hub's load.

    The transport reads every packet the socket holds at each readable event and hands each
    message here from inside that read; this only appends it to a deque, and one `call_soon`
    per batch hands everything gathered to `on_message` in arrival order at the loop's next
    turn (nothing waits for a batch to fill). What arrived while connecting (the messages a
    persistent session has queued) is handed over once the session is up.
    """

    def __init__(self, config: SessionConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._inbox: deque[tuple[str, bytes]] = deque()
        self._handover = NextTurn(self._drain)

    def _make_client(self) -> aiomqtt.Client:
        config = self.config
        transport = PahoTransport(
            config.host, config.port, on_message=self._arrived, client_id=config.client_id,
            clean_session=config.clean_session, username=config.username, password=config.password,
            will=self.will, keepalive=config.keepalive_s, timeout=config.connect_timeout_s,
            max_inflight=config.max_inflight,
            tls_context=ssl.create_default_context(cafile=config.tls_ca) if config.tls_ca else None,
            socket_options=NO_DELAY_SOCKET_OPTIONS if config.tcp_nodelay else ())
        # lecis.mqtt_session.Connection uses publish, subscribe, messages and async with: all here.
        return cast(aiomqtt.Client, transport)

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False,
                      timeout: float | None = None) -> None:
        """Publish on the current connection (SessionOffline without one) and await its PUBACK.

        Straight on the transport: the packet is written before this first waits, not a loop turn
        later from a task of its own (lecis Connection.publish). A connection that ends fails the
        wait, as there: ConnectionClosed.
        """
        connection = self.require()
        connection.raise_if_closed()
        transport = cast(PahoTransport, connection.client)
        try:
            await transport.publish(topic, payload, qos=qos, retain=retain,
                                    timeout=math.inf if timeout is None else timeout)
        except aiomqtt.MqttError as exc:
            raise ConnectionClosed(f"publish to {topic} not confirmed: {exc}") from exc

    async def _serve(self, connection: Connection, session: list[Coroutine[Any, Any, None]]) -> None:
        # As with aiomqtt's queue, what arrived while connecting is handed over once the session
        # is up (after `on_connect`, with `connected` set), not in the middle of setting it up.
        self._serving = True
        self._handover.soon()
        try:
            await super()._serve(connection, session)
        finally:
            self._serving = False

    _serving = False

    def _arrived(self, topic: str, payload: bytes) -> None:
        self._inbox.append((topic, payload))
        if self._serving:
            self._handover.soon()

    def _drain(self) -> None:
        inbox, deliver = self._inbox, self._deliver
        while inbox and self._serving:
            topic, payload = inbox.popleft()
            deliver(topic, payload)


def subscriptions(topics: Topics) -> list[str]:
    return ([topics.every_module_filter(leaf) for leaf in MODULE_LEAVES]
            + [topics.every_unit_filter(leaf) for leaf in UNIT_LEAVES] + [topics.hub_cmd()])


class HubLink:
    """`async with HubLink(config, handlers):` connected (or retrying) until the block ends."""

    def __init__(self, config: HubConfig, handlers: LinkHandlers, clock: Clock | None = None) -> None:
        self.config = config
        self.topics = Topics(config.topic_root)
        self.handlers = handlers
        self.clock = clock or SystemClock()
        self.stats: Counter[str] = Counter()  # received.<kind>, bad.<kind>, handler_errors
        self._warned: set[str] = set()
        will = aiomqtt.Will(self.topics.hub_state(), self._state(False), 1, True)
        self.session = QuickSession(session_config(config), will=will,
                                   subscriptions=subscriptions(self.topics), on_message=self.on_message,
                                   on_connect=self._on_connect, clock=self.clock,
                                   on_taken_over=self._taken_over)
        self._task: asyncio.Task[None] | None = None
        # Set, with what happened, when another client keeps taking our session: the hub must stop.
        self.duplicate: str | None = None
        self.fatal = asyncio.Event()

    def _taken_over(self, count: int) -> None:
        self.duplicate = (
            f"another MQTT client with client id {self.session.config.client_id!r} keeps taking this hub's "
            f"session over ({count} times within a minute): two hubs run with the same `hub: "
            f"{self.config.hub}` id. Each hub needs its own `hub:` id in its hub.yaml; this one stops")
        log.error("%s", self.duplicate)
        self.fatal.set()

    @property
    def connected(self) -> asyncio.Event:
        return self.session.connected

    def _state(self, online: bool) -> bytes:
        return encode(HubState(online, iso_ts(self.clock.now())))

    async def _on_connect(self, connection: Connection) -> list[Coroutine[Any, Any, None]]:
        await connection.publish(self.topics.hub_state(), self._state(True), qos=1, retain=True)
        for listener in list(self.handlers.connected):
            try:
                await listener()
            except Exception:  # a listener must not cost the connection
                self.stats["handler_errors"] += 1
                log.exception("a connect listener failed")
        return []

    async def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish on the current connection and await the PUBACK; SessionOffline without one."""
        await self.session.publish(topic, payload, qos=1, retain=retain)

    # ---- incoming -----------------------------------------------------------------------------
    def on_message(self, topic: str, payload: bytes) -> None:
        """Decode and route one message; never raises."""
        try:
            self._route(topic, payload)
        except WireFormatError as exc:
            self._bad(topic, str(exc))
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("handling a message on %s failed; the link goes on", topic)

    def _bad(self, topic: str, why: str) -> None:
        kind = self._kind(topic)
        self.stats[f"bad.{kind}"] += 1
        if kind not in self._warned:  # a unit that keeps sending garbage must not flood the log
            self._warned.add(kind)
            log.warning("message on %s does not fit the contract (%s); dropped and counted "
                        "(further ones of this kind are counted only)", topic, why)

    def _kind(self, topic: str) -> str:
        parts = self.topics.split(topic)
        if parts is None:
            return "other"
        return parts[1] if parts[1].startswith("$") else parts[2]

    def _route(self, topic: str, payload: bytes) -> None:
        topics = self.topics
        if topic == topics.hub_cmd():
            self.stats["received.hub_cmd"] += 1
            self.handlers.hub_command(payload)
            return
        parts = topics.split(topic)
        if parts is None or parts[0] == HUB_SEGMENT:
            return  # our own state, replies and experiment topics come back through the wildcards
        unit, target, leaf = parts
        kind = target if target.startswith("$") else leaf
        self.stats[f"received.{kind}"] += 1
        if kind in ("reply", "$reply"):
            self.handlers.reply(topic, payload)
            return
        if kind == "data" and self.handlers.data_bytes is not None:
            self.handlers.data_bytes(unit, target, payload, self.clock.now().timestamp())
            return
        value = from_bytes(payload)
        if kind == "$state":
            self.handlers.unit_state(unit, UnitState.from_json(value))
        elif kind == "$button":
            self.handlers.button(unit, Button.from_json(value))
        elif kind == "$birth":
            birth = Birth.from_json(value)
            if birth.unit != unit:
                raise WireFormatError(f"names unit {birth.unit!r} on unit {unit!r}'s topic", "unit")
            self.handlers.birth(unit, birth)
        elif kind in ("data", "event", "state"):
            now = self.clock.now().timestamp()
            if kind == "data":
                self.handlers.data(unit, target, Data.from_json(value), value, now)
            elif kind == "event":
                self.handlers.event(unit, target, Event.from_json(value), value, now)
            else:
                self.handlers.module_state(unit, target, ModuleState.from_json(value), value, now)

    # ---- life ---------------------------------------------------------------------------------
    async def __aenter__(self) -> HubLink:
        """Start the session; wait for the first connection up to the connect timeout, then go on."""
        self._task = asyncio.create_task(self.session.run(), name="hub-link")
        try:
            async with asyncio.timeout(self.session.config.connect_timeout_s):
                await self.session.connected.wait()
        except TimeoutError:
            log.warning("no broker at %s:%d yet; the hub keeps trying and records once it connects",
                        self.config.broker.host, self.config.broker.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session.connected.is_set():
            with contextlib.suppress(Exception):  # the will says the same if this does not get out
                async with asyncio.timeout(2.0):
                    await self.publish(self.topics.hub_state(), self._state(False), retain=True)
        self.session.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
