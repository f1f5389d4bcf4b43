"""paho-mqtt driven straight by the asyncio loop: the hub's MQTT connection, without aiomqtt.

aiomqtt reads one packet per readable event (paho's `loop_read()` handles one
packet when nothing of ours is in flight), with three or more `recv()` calls
per packet, and registers a writer through `call_soon_threadsafe` for every
packet queued (one extra loop turn and two `epoll_ctl` calls each). Under 500
readings a second that leaves the hub reading its socket late: a reading or
an acknowledgement waits behind hundreds of packets.

`PahoTransport` is one connection, shaped like the part of `aiomqtt.Client`
that `lecis.mqtt_session` uses (`async with`, `publish`, `subscribe`,
`messages`), and it raises `aiomqtt.MqttError` where aiomqtt does, so
`MqttSession`'s reconnect, backoff and takeover detection work unchanged:

* every readable event reads what the socket holds with one `recv()` of up
  to `READ_CHUNK` bytes, and paho parses every whole packet in it
  (`BufferedPaho` serves paho's small reads from that buffer);
* a packet queued on the loop's thread outside paho's own callbacks is
  written at once; one queued while packets are being read goes out in one
  `loop_write()` after the read; the socket is registered for writing only
  when the kernel's buffer is full;
* `loop_misc()` (keepalive pings, the broker's silence) runs on a 1 s timer.

Messages go to `on_message(topic, payload)` from inside the read, in arrival
order; the hub's link only queues them there (hub.link.QuickSession).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger("labedge.hub.mqtt")

#: Bytes taken from the socket per `recv()`: a burst of readings is a few hundred packets of ~200 B.
READ_CHUNK = 256 * 1024
#: Packets parsed per readable event before the loop gets a turn (the rest wait one turn).
MAX_PACKETS_PER_READ = 2000
MISC_INTERVAL_S = 1.0

OnMessage = Callable[[str, bytes], None]
SocketOption = tuple[int, int, int]


class BufferedPaho(mqtt.Client):
    """A paho client whose reads come from one big `recv()` per readable event.

    paho reads a packet with a `recv(1)` for its type, one per byte of its length and one for
    the rest. `_sock_recv` (paho 2.x, pinned) is the one place it reads: served here from a
    buffer, it costs one system call for every packet the socket holds, not three or more each.
    `would_block` is True once the socket had nothing more to give, so the caller knows when
    the buffer and the socket are both drained.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self.would_block = False

    @property
    def buffered(self) -> int:
        return len(self._rbuf) - self._rpos

    def _sock_recv(self, bufsize: int) -> bytes:
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            try:
                buf = super()._sock_recv(READ_CHUNK)
            except BlockingIOError:
                self.would_block = True
                raise
            if not buf:
                return buf  # the broker closed the connection: paho sees the end of the stream
            pos = 0
        chunk = buf[pos:pos + bufsize]
        self._rbuf, self._rpos = buf, pos + len(chunk)
        return chunk


class _Silent:
    """`messages` for MqttSession's loop: messages go to `on_message`; this ends with the connection."""

    def __init__(self, transport: PahoTransport) -> None:
        self._transport = transport

    def __aiter__(self) -> _Silent:
        return self

    async def __anext__(self) -> aiomqtt.Message:
        await asyncio.shield(self._transport.disconnected)
        raise aiomqtt.MqttError("Disconnected")  # a clean end too: the session decides what follows


class PahoTransport:
    """One MQTT connection; `async with` connects (aiomqtt.MqttError when it cannot)."""

    def __init__(self, host: str, port: int, *, on_message: OnMessage, client_id: str | None = None,
                 clean_session: bool = True, username: str | None = None, password: str | None = None,
                 will: aiomqtt.Will | None = None, keepalive: int = 60, timeout: float = 10.0,
                 max_inflight: int = 0, tls_context: ssl.SSLContext | None = None,
                 socket_options: Iterable[SocketOption] = ()) -> None:
        self._host, self._port, self._keepalive, self.timeout = host, port, keepalive, timeout
        self._socket_options = tuple(socket_options)
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.pending_calls_threshold = 10_000  # set by lecis Connection; no queue here to warn about
        self.connected: asyncio.Future[None] = self._loop.create_future()
        self.connected.add_done_callback(_consume)
        self.disconnected: asyncio.Future[None] = self._loop.create_future()
        self.disconnected.add_done_callback(_consume)
        self._publishes: dict[int, asyncio.Future[None]] = {}
        self._subscribes: dict[int, asyncio.Future[None]] = {}
        self._reading = False
        self._write_after_read = False
        self._fd = -1
        self._writer_added = False
        self._misc: asyncio.TimerHandle | None = None
        paho = self._paho = BufferedPaho(CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                         clean_session=clean_session, reconnect_on_failure=False)
        paho.enable_logger(log)
        paho.on_connect = self._connack
        paho.on_disconnect = self._gone
        paho.on_message = self._message
        paho.on_publish = self._puback
        paho.on_subscribe = self._suback
        paho.on_socket_open = self._socket_open
        paho.on_socket_close = self._socket_close
        paho.on_socket_register_write = self._register_write
        paho.on_socket_unregister_write = self._unregister_write
        paho.max_inflight_messages_set(max_inflight)
        if username is not None:
            paho.username_pw_set(username, password)
        if tls_context is not None:
            paho.tls_set_context(tls_context)
        if will is not None:
            paho.will_set(will.topic, will.payload, will.qos, will.retain)

    # ---- life ------------------------------------------------------------------------------------
    async def __aenter__(self) -> PahoTransport:
        try:
            # paho's connect blocks (TCP connect, TLS handshake): off the loop, as aiomqtt does.
            await self._loop.run_in_executor(None, self._paho.connect, self._host, self._port,
                                             self._keepalive)
        except (OSError, mqtt.WebsocketConnectionError) as exc:
            self._teardown()
            raise aiomqtt.MqttError(str(exc)) from None
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.wait([self.connected, self.disconnected], return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            self._teardown()
            raise aiomqtt.MqttError("Operation timed out") from None
        if not self.connected.done():
            self._teardown()
            raise aiomqtt.MqttError("the broker closed the connection before accepting it")
        try:
            self.connected.result()
        except aiomqtt.MqttError:
            self._teardown()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self.disconnected.done():
            self._paho.disconnect()  # written at once; paho closes the socket after it
            with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
                async with asyncio.timeout(self.timeout):
                    await asyncio.shield(self.disconnected)
        self._teardown()

    def _teardown(self) -> None:
        """Forget the socket and fail what waits on this connection (idempotent)."""
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        self._forget_fd()
        sock = self._paho.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        self._end(aiomqtt.MqttError("Disconnected"))

    def _end(self, exc: aiomqtt.MqttError | None) -> None:
        if not self.disconnected.done():
            if exc is None:
                self.disconnected.set_result(None)
            else:
                self.disconnected.set_exception(exc)
        for waiters in (self._publishes, self._subscribes):
            for future in waiters.values():
                if not future.done():
                    future.set_exception(aiomqtt.MqttCodeError(mqtt.MQTT_ERR_CONN_LOST, "Disconnected"))
            waiters.clear()

    # ---- calls ---------------------------------------------------------------------------------
    @property
    def messages(self) -> _Silent:
        return _Silent(self)

    async def publish(self, topic: str, payload: bytes | str | None = None, qos: int = 0,
                      retain: bool = False, timeout: float | None = None) -> None:
        """Publish; with QoS 1 wait for the PUBACK (`timeout` s, inf for ever)."""
        if self.disconnected.done():
            raise aiomqtt.MqttCodeError(mqtt.MQTT_ERR_NO_CONN, "Could not publish message")
        info = self._paho.publish(topic, payload, qos, retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if qos == 0 or info.is_published():
            return
        # The PUBACK is read at a later loop turn, so the waiter is in place before it can arrive.
        future = self._publishes[info.mid] = self._loop.create_future()
        await self._await(future, self._publishes, info.mid, timeout)

    async def subscribe(self, topic: str, qos: int = 0, timeout: float | None = None) -> None:
        if self.disconnected.done():
            raise aiomqtt.MqttCodeError(mqtt.MQTT_ERR_NO_CONN, "Could not subscribe to topic")
        result, mid = self._paho.subscribe(topic, qos)
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise aiomqtt.MqttCodeError(result, "Could not subscribe to topic")
        future = self._subscribes[mid] = self._loop.create_future()
        await self._await(future, self._subscribes, mid, timeout)

    async def _await(self, future: asyncio.Future[None], waiters: dict[int, asyncio.Future[None]],
                     mid: int, timeout: float | None) -> None:
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(None if limit == math.inf else limit):
                await future
        except TimeoutError:
            raise aiomqtt.MqttError("Operation timed out") from None
        finally:
            if waiters.get(mid) is future:
                del waiters[mid]

    # ---- paho's callbacks (on the loop's thread, except while connecting) ---------------------
    def _connack(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if self.connected.done():
            return
        if reason == mqtt.CONNACK_ACCEPTED:
            self.connected.set_result(None)
        else:
            self.connected.set_exception(MqttConnectError(reason))

    def _gone(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        clean = not reason.is_failure if hasattr(reason, "is_failure") else reason == mqtt.MQTT_ERR_SUCCESS
        self._end(None if clean else aiomqtt.MqttCodeError(reason, "Unexpected disconnection"))

    def _message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._on_message(message.topic, bytes(message.payload))

    def _puback(self, _c: Any, _u: Any, mid: int, _reason: Any, _props: Any) -> None:
        # Nobody waits when the publisher gave up (cancelled, timed out): nothing is kept for the mid,
        # which paho hands out again later.
        future = self._publishes.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _suback(self, _c: Any, _u: Any, mid: int, reasons: list[Any], _props: Any) -> None:
        future = self._subscribes.pop(mid, None)
        if future is None or future.done():
            return
        if any(getattr(r, "is_failure", False) for r in reasons):
            future.set_exception(aiomqtt.MqttCodeError(reasons[0], "subscription refused"))
        else:
            future.set_result(None)

    def _socket_open(self, _c: Any, _u: Any, sock: Any) -> None:
        if isinstance(sock, socket.socket):
            for option in self._socket_options:
                sock.setsockopt(*option)
        self._call(self._watch, sock.fileno())

    def _socket_close(self, _c: Any, _u: Any, _sock: Any) -> None:
        self._call(self._forget_fd)

    def _register_write(self, _c: Any, _u: Any, _sock: Any) -> None:
        if threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._flush)  # the CONNECT, queued while connecting
        elif self._reading:
            self._write_after_read = True  # acknowledgements (or a handler's publish): after the read
        else:
            self._flush()  # a publish from the hub's code: out now, not a loop turn later

    def _unregister_write(self, _c: Any, _u: Any, _sock: Any) -> None:
        return None  # the writer is removed in _flush once paho has nothing left to write

    # ---- the loop's side -------------------------------------------------------------------------
    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _watch(self, fd: int) -> None:
        if self._paho.socket() is None or self.disconnected.done():
            return
        self._fd = fd
        self._loop.add_reader(fd, self._readable)
        self._misc = self._loop.call_later(MISC_INTERVAL_S, self._tick)

    def _forget_fd(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            if self._writer_added:
                self._loop.remove_writer(self._fd)
            self._writer_added = False
            self._fd = -1

    def _readable(self) -> None:
        paho = self._paho
        paho.would_block = False
        self._reading = True
        try:
            for _ in range(MAX_PACKETS_PER_READ):
                rc = paho.loop_read()
                if rc != mqtt.MQTT_ERR_SUCCESS or paho.socket() is None:
                    self._lost(rc)
                    return
                if paho.would_block and not paho.buffered:
                    break
            else:
                # More may wait, in our buffer or (TLS) decrypted inside the SSL object, where epoll
                # cannot see it: read on at the next turn, after what the loop has ready.
                self._loop.call_soon(self._readable)
        except Exception as exc:  # paho raises on a broken socket; the connection is over
            self._lost(mqtt.MQTT_ERR_CONN_LOST, exc)
            return
        finally:
            self._reading = False
        if self._write_after_read:
            self._flush()

    def _flush(self) -> None:
        self._write_after_read = False
        paho = self._paho
        if paho.socket() is None:
            return
        try:
            rc = paho.loop_write()
        except Exception as exc:
            self._lost(mqtt.MQTT_ERR_CONN_LOST, exc)
            return
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self._lost(rc)
            return
        pending = paho.want_write()
        if pending and not self._writer_added and self._fd >= 0:
            self._loop.add_writer(self._fd, self._flush)  # the kernel's buffer is full: wait for room
            self._writer_added = True
        elif not pending and self._writer_added:
            self._loop.remove_writer(self._fd)
            self._writer_added = False

    def _tick(self) -> None:
        self._misc = None
        if self._paho.socket() is None:
            return
        rc = self._paho.loop_misc()
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self._lost(rc)
            return
        self._misc = self._loop.call_later(MISC_INTERVAL_S, self._tick)

    def _lost(self, rc: int, exc: BaseException | None = None) -> None:
        why = f"{exc}" if exc is not None else mqtt.error_string(rc)
        self._forget_fd()
        self._end(aiomqtt.MqttCodeError(rc, f"connection lost: {why}"))


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


@contextlib.asynccontextmanager
async def connected(host: str, port: int, on_message: OnMessage,
                    **kwargs: Any) -> AsyncIterator[PahoTransport]:
    """`async with connected(host, port, on_message) as transport:` a connected PahoTransport."""
    async with PahoTransport(host, port, on_message=on_message, **kwargs) as transport:
        yield transport
