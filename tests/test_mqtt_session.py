"""The shared MQTT session against a real Mosquitto: reconnects, restores, times out, keeps sessions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from hub.unit_client import ReplyTimeout, connected_client
from lecis.errors import LabedgeError
from lecis.mqtt_session import (
    Connection,
    ConnectionClosed,
    MqttSession,
    Requests,
    RequestTimeout,
    SessionConfig,
    SessionOffline,
)
from provisioning.broker import MosquittoProcess, find_mosquitto


@pytest.fixture
def broker() -> Iterator[MosquittoProcess]:
    """A broker of this test's own, which it may stop and start again on the same port."""
    if find_mosquitto() is None:
        pytest.fail("mosquitto is missing; `make test` installs it")
    with MosquittoProcess() as running_broker:
        yield running_broker


class Inbox:
    """Messages a session delivered, waitable."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.changed = asyncio.Event()

    def __call__(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        self.changed.set()

    async def until(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()


def fast(port: int, **kwargs: object) -> SessionConfig:
    return SessionConfig(port=port, initial_backoff_s=0.05, max_backoff_s=0.2, **kwargs)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def publisher(port: int) -> AsyncIterator[MqttSession]:
    async with MqttSession(fast(port)) as session:
        yield session


async def test_reconnects_after_the_broker_restarts_and_restores_subscriptions(
        broker: MosquittoProcess) -> None:
    inbox = Inbox()
    closed: list[Connection] = []

    async def on_connect(connection: Connection) -> list[object]:
        closed.append(connection)
        return []

    async with MqttSession(fast(broker.port), subscriptions=["t/a"], on_message=inbox,
                           on_connect=on_connect) as session:  # type: ignore[arg-type]
        await session.subscribe("t/b")  # added while connected: restored too
        first = session.require()
        broker.stop()
        async with asyncio.timeout(10):
            await asyncio.wait({first.closed})  # the session says so itself
        assert first.is_closed
        with pytest.raises(ConnectionClosed):
            first.raise_if_closed()
        with pytest.raises(SessionOffline):
            await session.publish("t/a", b"lost", qos=1)
        broker.start()
        await session.wait_connected(timeout=10)
        assert session.connections == 2 and len(closed) == 2
        async with publisher(broker.port) as other:
            await other.publish("t/a", b"one")
            await other.publish("t/b", b"two")
            await inbox.until(2)
    assert sorted(inbox.messages) == [("t/a", b"one"), ("t/b", b"two")]


async def test_a_persistent_session_receives_what_was_queued_while_it_was_away(
        broker: MosquittoProcess) -> None:
    config = fast(broker.port, client_id="test-hub-subscriber", clean_session=False)
    async with MqttSession(config, subscriptions=["lab/u1/+/data"]):
        pass  # the broker now knows the session and its subscription
    async with publisher(broker.port) as unit:
        for i in range(50):
            await unit.publish("lab/u1/ph1/data", b"%d" % i, qos=1)
    inbox = Inbox()
    async with MqttSession(config, subscriptions=["lab/u1/+/data"], on_message=inbox):
        await inbox.until(50)
    assert [int(payload) for _, payload in inbox.messages] == list(range(50))


def test_a_persistent_session_needs_a_fixed_client_id() -> None:
    with pytest.raises(ValueError, match="client_id"):
        SessionConfig(clean_session=False)


async def test_a_handler_that_raises_does_not_end_the_message_loop(broker: MosquittoProcess) -> None:
    seen: list[bytes] = []
    got_second = asyncio.Event()

    def handler(topic: str, payload: bytes) -> None:
        seen.append(payload)
        if payload == b"bad":
            raise RuntimeError("handler bug")
        got_second.set()

    async with MqttSession(fast(broker.port), subscriptions=["t/x"], on_message=handler) as session:
        await session.publish("t/x", b"bad")
        await session.publish("t/x", b"good")
        async with asyncio.timeout(10):
            await got_second.wait()
        assert session.connections == 1  # same connection: the loop went on
    assert seen == [b"bad", b"good"]


async def test_a_request_without_an_answer_times_out_with_our_own_error() -> None:
    requests: Requests[str] = Requests()
    sent: list[str] = []

    async def send() -> None:
        sent.append("x")

    with pytest.raises(RequestTimeout, match="ping"):
        await requests.call("id-1", send, 0.05, "ping")
    assert sent == ["x"] and not requests.waiting("id-1")  # removed in finally

    async def answered() -> None:
        asyncio.get_running_loop().call_soon(requests.resolve, "id-2", "pong")

    assert await requests.call("id-2", answered, 5, "ping") == "pong"


async def test_a_command_to_no_unit_raises_reply_timeout(broker: MosquittoProcess) -> None:
    async with connected_client("127.0.0.1", broker.port, "nobody-here") as client:
        with pytest.raises(ReplyTimeout) as caught:
            await client.call(None, "STATUS", lease=None, timeout=0.2)
    assert isinstance(caught.value, RequestTimeout) and isinstance(caught.value, LabedgeError)
    assert "nobody-here" in str(caught.value)


async def test_no_broker_is_a_named_error_after_the_connect_timeout() -> None:
    from provisioning.broker import free_port

    config = SessionConfig(port=free_port(), connect_timeout_s=0.3, initial_backoff_s=0.05)
    with pytest.raises(SessionOffline, match="is it running"):
        async with MqttSession(config):
            pass
