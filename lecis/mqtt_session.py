"""One MQTT session for every labedge process: connect, reconnect forever, restore, request/reply.

`MqttSession.run()` keeps one aiomqtt connection at a time, with TCP_NODELAY,
re-established with capped exponential backoff until `stop()`. After each
connection it restores the subscriptions, then calls `on_connect(connection)`,
whose coroutines live as long as that connection. The session owns the
message loop: every message goes to `on_message(topic, payload)`, and when the
loop ends (the broker went away) `Connection.closed` resolves, so code bound
to a connection learns it from us, never from aiomqtt's private state.
A persistent session (`clean_session=False` with a fixed `client_id`) lets the
broker queue QoS 1 messages while the subscriber is away.

`Requests` is a future per request id, removed in `finally`, whose timeout is
our own `RequestTimeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiomqtt

from lecis.clock import Clock, SystemClock
from lecis.errors import LabedgeError, SettingInvalid
from lecis.mqtt_options import NO_DELAY_SOCKET_OPTIONS

log = logging.getLogger("labedge.mqtt")

# A connection the broker ends this soon after it was made, this many times within the window, while
# the broker takes us back at once: another client with our client id is taking the session over.
TAKEOVER_WITHIN_S = 5.0
TAKEOVER_COUNT = 3
TAKEOVER_WINDOW_S = 60.0

T = TypeVar("T")


class SessionOffline(LabedgeError, ConnectionError):
    """The session has no connection to the broker right now."""


class ConnectionClosed(LabedgeError, ConnectionError):
    """The connection a caller was bound to has ended; the session reconnects by itself."""


class RequestTimeout(LabedgeError, TimeoutError):
    """No answer to a request arrived in time."""


@dataclass(frozen=True)
class SessionConfig:
    """Where and how to connect. `client_id` is required for a persistent session."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str | None = None
    clean_session: bool = True
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None  # path of a CA file; TLS is on when set
    keepalive_s: int = 10
    connect_timeout_s: float = 10.0
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 10.0
    # 0: no client-side cap; whoever publishes bounds what is in flight (the forwarder's window).
    max_inflight: int = 0
    # Small packets (PUBACKs, ESTOPs) leave at once. Off only to measure bulk throughput
    # the way plain clients send it (Nagle coalesces back-to-back publishes).
    tcp_nodelay: bool = True

    def __post_init__(self) -> None:
        if not self.clean_session and not self.client_id:
            raise SettingInvalid("a persistent MQTT session (clean_session false) needs a fixed client_id")


def next_backoff(current: float, cap: float) -> float:
    return min(current * 2, cap)


class Connection:
    """One established connection. `closed` resolves (with the cause as exception) when it ends."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed.add_done_callback(_consume)
        # aiomqtt warns above this many calls awaiting their acknowledgement; publishers here
        # bound their own windows, so only an unbounded pile-up is worth a warning.
        client.pending_calls_threshold = 10_000

    @property
    def is_closed(self) -> bool:
        return self.closed.done()

    def close(self, cause: BaseException | None = None) -> None:
        if not self.closed.done():
            if cause is None:
                self.closed.set_result(None)
            else:
                self.closed.set_exception(ConnectionClosed(f"connection to the broker closed: {cause}"))

    def raise_if_closed(self) -> None:
        if self.closed.done():
            exc = None if self.closed.cancelled() else self.closed.exception()
            raise ConnectionClosed("connection to the broker closed") from exc

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False,
                      timeout: float | None = None) -> None:
        """Publish and wait for the PUBACK (QoS 1); raises ConnectionClosed if the connection ends first."""
        self.raise_if_closed()
        send = asyncio.ensure_future(self.client.publish(
            topic, payload, qos=qos, retain=retain, timeout=float("inf") if timeout is None else timeout))
        try:
            await asyncio.wait((send, self.closed), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            send.cancel()
            raise
        if not send.done():
            send.cancel()
            self.raise_if_closed()
        try:
            send.result()
        except aiomqtt.MqttError as exc:
            raise ConnectionClosed(f"publish to {topic} not confirmed: {exc}") from exc

    async def subscribe(self, topic: str, qos: int = 1) -> None:
        try:
            await self.client.subscribe(topic, qos=qos)
        except aiomqtt.MqttError as exc:
            raise ConnectionClosed(f"subscribe to {topic} not confirmed: {exc}") from exc


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # marks it retrieved: nobody need wait on a closed connection


OnConnect = Callable[[Connection], Awaitable[Iterable[Coroutine[Any, Any, None]]]]
OnMessage = Callable[[str, bytes], None]
OnTakenOver = Callable[[int], None]


class MqttSession:
    """A connection re-established forever until `stop()`; `async with` runs it in the background."""

    def __init__(self, config: SessionConfig, *, will: aiomqtt.Will | None = None,
                 subscriptions: Iterable[str] = (), on_message: OnMessage | None = None,
                 on_connect: OnConnect | None = None, clock: Clock | None = None,
                 on_taken_over: OnTakenOver | None = None) -> None:
        """`on_taken_over(count)`: called when connections keep being ended right after they were made
        (TAKEOVER_COUNT within TAKEOVER_WINDOW_S), as when two clients share our client id."""
        self.config = config
        self.on_taken_over = on_taken_over
        self._short_lived: list[float] = []  # monotonic ends of connections that lasted < TAKEOVER_WITHIN_S
        self.will = will
        self.subscriptions: list[str] = list(subscriptions)
        self.on_message = on_message
        self.on_connect = on_connect
        self.clock = clock or SystemClock()
        self.connection: Connection | None = None
        self.connected = asyncio.Event()
        self.connections = 0  # how many times a connection was established
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ---- life ------------------------------------------------------------------------------------
    def _make_client(self) -> aiomqtt.Client:
        config = self.config
        tls = ssl.create_default_context(cafile=config.tls_ca) if config.tls_ca else None
        return aiomqtt.Client(
            config.host, config.port, identifier=config.client_id, username=config.username,
            password=config.password, will=self.will, keepalive=config.keepalive_s,
            timeout=config.connect_timeout_s, max_inflight_messages=config.max_inflight,
            tls_context=tls, clean_session=config.clean_session,
            socket_options=NO_DELAY_SOCKET_OPTIONS if config.tcp_nodelay else (),
        )

    async def run(self) -> None:
        """Connect, serve, reconnect with capped backoff; returns after `stop()`."""
        config = self.config
        backoff = config.initial_backoff_s
        while not self._stopping.is_set():
            was_connected = False
            connected_at = 0.0
            try:
                async with self._make_client() as client:
                    connection = Connection(client)
                    # Offline from the instant the connection ends, not once its tasks are wound up.
                    connection.closed.add_done_callback(lambda _: self.connected.clear())
                    try:
                        for topic in list(self.subscriptions):
                            await connection.subscribe(topic)
                        # Usable by on_connect (birth, states); `connected` is set only after it.
                        self.connection = connection
                        tasks = list(await self.on_connect(connection)) if self.on_connect else []
                        self.connections += 1
                        self.connected.set()
                        was_connected = True
                        connected_at = self.clock.monotonic()
                        backoff = config.initial_backoff_s
                        log.info("connected to broker %s:%d", config.host, config.port)
                        await self._serve(connection, tasks)
                    finally:
                        connection.close()
            except (aiomqtt.MqttError, ConnectionClosed) as exc:
                if was_connected:
                    log.warning("lost the broker %s:%d (%s)", config.host, config.port, exc)
                    if not self._stopping.is_set():
                        self._ended_early(connected_at)
                else:
                    log.warning("cannot reach broker %s:%d (%s); retrying in %.1f s",
                                config.host, config.port, exc, backoff)
            finally:
                self.connection = None
                self.connected.clear()
            if self._stopping.is_set():
                break
            await self._wait_stop_or(backoff)
            backoff = next_backoff(backoff, config.max_backoff_s)

    def _ended_early(self, connected_at: float) -> None:
        """Count a connection the broker ended right after it was made; report repeated ones."""
        now = self.clock.monotonic()
        if now - connected_at >= TAKEOVER_WITHIN_S:
            return
        self._short_lived = [t for t in self._short_lived if now - t < TAKEOVER_WINDOW_S] + [now]
        if len(self._short_lived) >= TAKEOVER_COUNT and self.on_taken_over is not None:
            count = len(self._short_lived)
            self._short_lived = []
            try:
                self.on_taken_over(count)
            except Exception:
                log.exception("the session takeover callback failed")

    async def _serve(self, connection: Connection, session: list[Coroutine[Any, Any, None]]) -> None:
        async def messages() -> None:
            try:
                async for message in connection.client.messages:
                    payload = message.payload
                    data = payload if isinstance(payload, bytes) else str(payload or "").encode()
                    self._deliver(message.topic.value, data)
            except aiomqtt.MqttError as exc:
                connection.close(exc)
                raise

        tasks = [asyncio.create_task(messages())] + [asyncio.create_task(c) for c in session]
        stop = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            connection.close()
            for task in [*tasks, stop]:
                task.cancel()
            await asyncio.gather(*tasks, stop, return_exceptions=True)

    def _deliver(self, topic: str, payload: bytes) -> None:
        if self.on_message is None:
            return
        try:
            self.on_message(topic, payload)
        except Exception:  # one bad message must never end the message loop
            log.exception("handling a message on %s failed; it was dropped", topic)

    async def _wait_stop_or(self, seconds: float) -> None:
        stop = asyncio.ensure_future(self._stopping.wait())
        sleep = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait([stop, sleep], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            sleep.cancel()

    def stop(self) -> None:
        self._stopping.set()

    async def __aenter__(self) -> MqttSession:
        """Run in the background; returns once connected (SessionOffline after connect_timeout_s)."""
        self._task = asyncio.create_task(self.run(), name="mqtt-session")
        try:
            await asyncio.wait_for(self.connected.wait(), self.config.connect_timeout_s)
        except TimeoutError:
            await self._end()
            raise SessionOffline(f"no connection to broker {self.config.host}:{self.config.port} "
                                 f"within {self.config.connect_timeout_s:g} s; is it running?") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._end()

    async def _end(self) -> None:
        self.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ---- using the current connection ----------------------------------------------------------
    def require(self) -> Connection:
        connection = self.connection
        if connection is None or connection.is_closed:
            raise SessionOffline(f"not connected to broker {self.config.host}:{self.config.port}")
        return connection

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False,
                      timeout: float | None = None) -> None:
        """Publish on the current connection (SessionOffline without one) and await its PUBACK."""
        await self.require().publish(topic, payload, qos, retain, timeout)

    async def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now if connected, and again after every reconnect."""
        if topic not in self.subscriptions:
            self.subscriptions.append(topic)
        connection = self.connection
        if connection is not None and not connection.is_closed:
            await connection.subscribe(topic, qos)

    async def wait_connected(self, timeout: float | None = None) -> Connection:
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError:
            raise SessionOffline(f"no connection to broker {self.config.host}:{self.config.port} "
                                 f"within {timeout:g} s") from None
        return self.require()


class Requests(Generic[T]):
    """A future per request id: `call()` registers it, `resolve()` completes it."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[T]] = {}

    def resolve(self, key: str, value: T) -> bool:
        """Complete the waiter for `key`; False when nobody waits for it."""
        waiter = self._waiting.get(key)
        if waiter is None or waiter.done():
            return False
        waiter.set_result(value)
        return True

    def waiting(self, key: str) -> bool:
        return key in self._waiting

    async def call(self, key: str, send: Callable[[], Awaitable[object]], timeout: float,
                   what: str) -> T:
        """Register `key`, run `send()`, await the answer; RequestTimeout names `what`."""
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if key in self._waiting:
            raise SettingInvalid(f"request id {key!r} is already awaiting an answer")
        self._waiting[key] = waiter
        try:
            await send()
            try:
                # asyncio.timeout, not wait_for: in 3.11 wait_for returns the answer instead of raising
                # when a cancel races it, and the caller's loop would never learn it was cancelled.
                async with asyncio.timeout(timeout):
                    return await waiter
            except TimeoutError:
                raise RequestTimeout(f"no answer to {what} within {timeout:g} s") from None
        finally:
            self._waiting.pop(key, None)


@contextlib.asynccontextmanager
async def session(config: SessionConfig, **kwargs: Any) -> AsyncIterator[MqttSession]:
    """`async with session(config, on_message=...) as s:` a running, connected MqttSession."""
    async with MqttSession(config, **kwargs) as running:
        yield running
