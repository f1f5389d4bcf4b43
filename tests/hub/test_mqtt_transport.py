"""The hub's own MQTT transport (paho on the asyncio loop) against a real Mosquitto."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.mqtt_transport import READ_CHUNK, BufferedPaho, PahoTransport
from provisioning.broker import MosquittoProcess, free_port
from tests.brokers import own_mosquitto


@pytest.fixture
def own_broker() -> Iterator[MosquittoProcess]:
    """A broker this test may stop and start again on the same port."""
    with own_mosquitto(persistence=True) as broker:
        yield broker


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.changed = asyncio.Event()

    def __call__(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        self.changed.set()

    async def until(self, count: int, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()


def topic() -> str:
    return f"t/{uuid.uuid4().hex[:8]}"


class CountingSocket:
    """Stands in for paho's socket: hands out `data` in pieces of `chunk`, counting recv calls."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.chunk, self.recvs = data, chunk, 0

    def recv(self, size: int) -> bytes:
        self.recvs += 1
        if not self.data:
            raise BlockingIOError
        piece, self.data = self.data[:min(size, self.chunk)], self.data[min(size, self.chunk):]
        return piece

    def close(self) -> None:
        self.data = b""


def test_paho_reads_every_packet_from_one_recv_and_resumes_a_packet_cut_in_two() -> None:
    got: list[tuple[str, bytes]] = []
    paho = BufferedPaho(CallbackAPIVersion.VERSION2, client_id="x")
    paho.on_message = lambda _c, _u, m: got.append((m.topic, m.payload))
    packets = b"".join(_publish_packet(f"a/{i}", b"p" * (i * 7)) for i in range(200))
    # Two socket reads' worth, the second starting in the middle of a packet.
    fake = CountingSocket(packets, chunk=len(packets) // 2 + 3)
    assert fake.chunk < READ_CHUNK
    paho._sock = fake  # type: ignore[assignment]
    while not (paho.would_block and not paho.buffered):
        assert paho.loop_read() == mqtt.MQTT_ERR_SUCCESS
    assert got == [(f"a/{i}", b"p" * (i * 7)) for i in range(200)]
    assert fake.recvs == 3  # two with data, one that said "nothing more": not three per packet


def _publish_packet(name: str, payload: bytes) -> bytes:
    """An MQTT 3.1.1 PUBLISH, QoS 0."""
    topic_bytes = name.encode()
    body = len(topic_bytes).to_bytes(2, "big") + topic_bytes + payload
    length, rest = bytearray(), len(body)
    while True:
        byte, rest = rest % 128, rest // 128
        length.append(byte | (128 if rest else 0))
        if not rest:
            break
    return bytes([0x30]) + bytes(length) + body


async def test_a_burst_arrives_whole_and_in_order_and_publishes_are_acknowledged(
        mosquitto: MosquittoProcess) -> None:
    name, inbox = topic(), Inbox()
    big = bytes(range(256)) * (3 * READ_CHUNK // 256)  # spans several reads
    async with PahoTransport("127.0.0.1", mosquitto.port, on_message=inbox) as sub, \
            PahoTransport("127.0.0.1", mosquitto.port, on_message=lambda t, p: None) as pub:
        await sub.subscribe(f"{name}/#", qos=1)
        await asyncio.gather(*(pub.publish(f"{name}/{i}", f"m{i}".encode(), qos=1) for i in range(2000)))
        await pub.publish(f"{name}/big", big, qos=1)
        await inbox.until(2001)
    assert inbox.messages[:2000] == [(f"{name}/{i}", f"m{i}".encode()) for i in range(2000)]
    assert inbox.messages[2000] == (f"{name}/big", big)


async def test_a_persistent_session_gets_what_was_published_while_it_was_away(
        mosquitto: MosquittoProcess) -> None:
    name, client_id, inbox = topic(), f"keep-{uuid.uuid4().hex[:6]}", Inbox()
    async with PahoTransport("127.0.0.1", mosquitto.port, on_message=inbox, client_id=client_id,
                             clean_session=False) as sub:
        await sub.subscribe(name, qos=1)
    async with PahoTransport("127.0.0.1", mosquitto.port, on_message=lambda t, p: None) as pub:
        for i in range(50):
            await pub.publish(name, str(i).encode(), qos=1)
    async with PahoTransport("127.0.0.1", mosquitto.port, on_message=inbox, client_id=client_id,
                             clean_session=False):
        await inbox.until(50)
    assert [p for _t, p in inbox.messages] == [str(i).encode() for i in range(50)]


async def test_the_broker_going_away_ends_messages_and_fails_waiting_publishes(
        own_broker: MosquittoProcess) -> None:
    async with PahoTransport("127.0.0.1", own_broker.port, on_message=lambda t, p: None,
                             timeout=30) as transport:
        ended = asyncio.ensure_future(transport.messages.__anext__())
        own_broker.stop()
        with pytest.raises(aiomqtt.MqttError):
            async with asyncio.timeout(10):
                await ended
        with pytest.raises(aiomqtt.MqttError):
            await transport.publish("t/x", b"1", qos=1)
    own_broker.start()


async def test_no_broker_is_an_mqtt_error_naming_the_cause() -> None:
    with pytest.raises(aiomqtt.MqttError, match=r"refused|Connection"):
        async with PahoTransport("127.0.0.1", free_port(), on_message=lambda t, p: None):
            pass


async def test_an_idle_connection_stays_up_past_its_keepalive(mosquitto: MosquittoProcess) -> None:
    name, inbox = topic(), Inbox()
    async with PahoTransport("127.0.0.1", mosquitto.port, on_message=inbox, keepalive=1) as transport:
        await transport.subscribe(name, qos=1)
        # The broker drops a client silent for 1.5 keepalives: only our pings keep this one.
        await asyncio.sleep(3.5)
        assert not transport.disconnected.done()
        await transport.publish(name, b"still here", qos=1)
        await inbox.until(1)


async def test_the_will_is_published_when_the_connection_breaks(mosquitto: MosquittoProcess) -> None:
    name, inbox = topic(), Inbox()
    async with PahoTransport("127.0.0.1", mosquitto.port, on_message=inbox) as watcher:
        await watcher.subscribe(name, qos=1)
        doomed = PahoTransport("127.0.0.1", mosquitto.port, on_message=lambda t, p: None,
                               will=aiomqtt.Will(name, b"gone", 1, False))
        await doomed.__aenter__()
        sock = doomed._paho.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)  # no DISCONNECT: the broker sends the will
        await inbox.until(1)
        await doomed.__aexit__(None, None, None)
    assert inbox.messages == [(name, b"gone")]
