"""Controller side of the contract: send commands to a unit and await their replies.

Each command is a future keyed by its id (`lecis.mqtt_session.Requests`),
resolved by the unit's reply and always removed in `finally`. The connection
is a `lecis.mqtt_session.MqttSession`: it reconnects by itself and restores
the reply subscriptions. Used by the experiment controller, `labedge cmd`,
the tests and the benchmarks.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from lecis.commands import FINAL_STATUS_VALUES, Command
from lecis.mqtt_session import MqttSession, Requests, RequestTimeout, SessionConfig
from lecis.topics import Topics
from lecis.wire import Reply, WireFormatError, check, encode, from_bytes

log = logging.getLogger("labedge.hub")


class ReplyTimeout(RequestTimeout):
    """No final reply arrived in time."""


class Publisher(Protocol):
    """What UnitClient needs of its connection: an MqttSession, or an aiomqtt.Client."""

    async def publish(self, topic: str, payload: bytes | str, qos: int = ..., retain: bool = ...,
                      ) -> None: ...

    async def subscribe(self, topic: str, qos: int = ...) -> Any: ...


class UnitClient:
    """Talks to one unit over `client`; call `start()` once connected, pass messages to `feed()`."""

    def __init__(self, client: Publisher, unit: str, topics: Topics | None = None,
                 holder: str = "controller") -> None:
        self.client = client
        self.unit = unit
        self.topics = topics or Topics()
        self.holder = holder
        self.token: str | None = None
        self.replies: dict[str, list[dict[str, Any]]] = {}
        self._requests: Requests[dict[str, Any]] = Requests()

    async def start(self) -> None:
        await self.client.subscribe(self.topics.unit_reply(self.unit), qos=1)
        await self.client.subscribe(self.topics.module_reply_filter(self.unit), qos=1)

    def feed(self, topic: str, payload: bytes) -> None:
        """Pass every incoming message here (the caller owns the message loop)."""
        parts = self.topics.split(topic)
        if parts is None or parts[0] != self.unit or parts[2] not in ("reply", "") or (
                parts[2] == "" and parts[1] != "$reply"):
            return
        try:
            reply = from_bytes(payload)
        except WireFormatError:
            return
        if not isinstance(reply, dict):
            return
        problems = check(Reply, reply)
        if problems:  # still delivered: the caller sees what the unit said, the log says what is wrong
            log.warning("reply on %s does not fit the contract: %s", topic, problems[0])
        command_id = reply.get("id")
        if not isinstance(command_id, str):
            return
        self.replies.setdefault(command_id, []).append(reply)
        if reply.get("status") in FINAL_STATUS_VALUES:
            self._requests.resolve(command_id, reply)

    async def send(self, module: str | None, cmd: str, args: dict[str, Any] | None = None,
                   lease: str | bool | None = True, command_id: str | None = None) -> str:
        """Publish a command; `lease=True` attaches the current token. Returns the id."""
        command_id = command_id or str(uuid.uuid4())
        token = self.token if lease is True else (lease or None)
        payload = encode(Command(command_id, cmd, args or {}, token or None))
        topic = self.topics.unit_cmd(self.unit) if module is None else self.topics.cmd(self.unit, module)
        await self.client.publish(topic, payload, qos=1)
        return command_id

    async def call(self, module: str | None, cmd: str, args: dict[str, Any] | None = None,
                   lease: str | bool | None = True, timeout: float = 10.0,
                   command_id: str | None = None) -> dict[str, Any]:
        """Send a command and return its final reply (done, failed or rejected)."""
        command_id = command_id or str(uuid.uuid4())

        async def send() -> None:
            await self.send(module, cmd, args, lease, command_id)

        try:
            return await self._requests.call(command_id, send, timeout, f"{cmd} ({command_id})")
        except RequestTimeout:
            raise ReplyTimeout(f"no final reply to {cmd} ({command_id}) from {self.unit} "
                               f"within {timeout:g} s; is the unit running and connected?") from None

    async def acquire(self, ttl_s: float = 30.0) -> dict[str, Any]:
        reply = await self.call(None, "lease.acquire", {"holder": self.holder, "ttl_s": ttl_s}, lease=None)
        if reply["status"] == "done":
            self.token = reply["result"]["token"]
        return reply


@contextlib.asynccontextmanager
async def connected_client(host: str, port: int, unit: str, holder: str = "controller",
                           topics: Topics | None = None, username: str | None = None,
                           password: str | None = None, tls_ca: str | None = None,
                           ) -> AsyncIterator[UnitClient]:
    """A connected, self-reconnecting session with a UnitClient fed by its message loop."""
    config = SessionConfig(host=host, port=port, client_id=f"{holder}-{uuid.uuid4().hex[:8]}",
                           username=username, password=password, tls_ca=tls_ca)
    session = MqttSession(config)
    unit_client = UnitClient(session, unit, topics, holder)
    session.on_message = unit_client.feed
    async with session:
        await unit_client.start()
        yield unit_client
