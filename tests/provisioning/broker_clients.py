"""Small synchronous MQTT clients (paho) for the broker tests: connect as an account, wait on events."""

from __future__ import annotations

import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt


class Refused(Exception):
    """The broker refused the connection."""


class Client:
    """One paho client on its own network thread; every message it receives is kept."""

    def __init__(self, port: int, username: str | None, password: str | None, name: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.changed = threading.Condition()
        self.connected = threading.Event()
        self.reason: object = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name,
                                  protocol=mqtt.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.granted: list[int] = []
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self.connected.wait(10):
            self.close()
            raise AssertionError(f"no CONNACK for {name} within 10 s")
        if self.reason != 0:
            self.close()
            raise Refused(str(self.reason))

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                    properties: object) -> None:
        self.reason = reason
        self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.changed:
            self.messages.append((msg.topic, msg.payload))
            self.changed.notify_all()

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: list[object],
                      properties: object) -> None:
        with self.changed:
            self.granted += [int(r.value) if hasattr(r, "value") else int(r) for r in reasons]  # type: ignore[call-overload]
            self.changed.notify_all()

    def subscribe(self, topic: str) -> int:
        """Subscribe at QoS 1 and return the granted QoS (128: refused)."""
        before = len(self.granted)
        self.client.subscribe(topic, qos=1)
        self.wait(lambda: len(self.granted) > before, f"SUBACK for {topic}")
        return self.granted[before]

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)

    def wait(self, done: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        with self.changed:
            if not self.changed.wait_for(done, timeout):
                raise AssertionError(f"{what} did not happen within {timeout:g} s")

    def topics(self) -> list[str]:
        with self.changed:
            return [topic for topic, _ in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
