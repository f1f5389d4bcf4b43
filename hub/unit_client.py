"""Controller side of the contract: send commands to a unit and await their replies.

Each command is a future keyed by its id, resolved by the unit's reply and
always removed in `finally`. Used by the experiment controller, the tests
and the benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt

from lecis.errors import LabedgeError
from lecis.mqtt_options import NO_DELAY_SOCKET_OPTIONS
from lecis.topics import Topics

FINAL = ("done", "failed", "rejected")


class ReplyTimeout(LabedgeError, TimeoutError):
    """No final reply arrived in time."""


class UnitClient:
    """Talks to one unit over an open aiomqtt client; call `start()` inside its connection."""

    def __init__(self, client: aiomqtt.Client, unit: str, topics: Topics | None = None,
                 holder: str = "controller") -> None:
        self.client = client
        self.unit = unit
        self.topics = topics or Topics()
        self.holder = holder
        self.token: str | None = None
        self.replies: dict[str, list[dict[str, Any]]] = {}
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def start(self) -> None:
        await self.client.subscribe(self.topics.unit_reply(self.unit), qos=1)
        await self.client.subscribe(f"{self.topics.root}/{self.unit}/+/reply", qos=1)

    def feed(self, topic: str, payload: bytes) -> None:
        """Pass every incoming message here (the caller owns the message loop)."""
        parts = self.topics.split(topic)
        if parts is None or parts[0] != self.unit or parts[2] not in ("reply", "") or (
                parts[2] == "" and parts[1] != "$reply"):
            return
        try:
            reply = json.loads(payload)
        except ValueError:
            return
        if not isinstance(reply, dict):
            return
        command_id = reply.get("id")
        if not isinstance(command_id, str):
            return
        self.replies.setdefault(command_id, []).append(reply)
        waiter = self._waiters.get(command_id)
        if waiter is not None and not waiter.done() and reply.get("status") in FINAL:
            waiter.set_result(reply)

    async def send(self, module: str | None, cmd: str, args: dict[str, Any] | None = None,
                   lease: str | bool | None = True, command_id: str | None = None) -> str:
        """Publish a command; `lease=True` attaches the current token. Returns the id."""
        command_id = command_id or str(uuid.uuid4())
        body: dict[str, Any] = {"id": command_id, "cmd": cmd, "args": args or {}}
        token = self.token if lease is True else (lease or None)
        if token:
            body["lease"] = token
        topic = self.topics.unit_cmd(self.unit) if module is None else self.topics.cmd(self.unit, module)
        await self.client.publish(topic, json.dumps(body), qos=1)
        return command_id

    async def call(self, module: str | None, cmd: str, args: dict[str, Any] | None = None,
                   lease: str | bool | None = True, timeout: float = 10.0,
                   command_id: str | None = None) -> dict[str, Any]:
        """Send a command and return its final reply (done, failed or rejected)."""
        command_id = command_id or str(uuid.uuid4())
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._waiters[command_id] = waiter
        try:
            await self.send(module, cmd, args, lease, command_id)
            try:
                return await asyncio.wait_for(waiter, timeout)
            except TimeoutError:
                raise ReplyTimeout(f"no final reply to {cmd} ({command_id}) from {self.unit} "
                                   f"within {timeout:g} s") from None
        finally:
            self._waiters.pop(command_id, None)

    async def acquire(self, ttl_s: float = 30.0) -> dict[str, Any]:
        reply = await self.call(None, "lease.acquire", {"holder": self.holder, "ttl_s": ttl_s}, lease=None)
        if reply["status"] == "done":
            self.token = reply["result"]["token"]
        return reply


@contextlib.asynccontextmanager
async def connected_client(host: str, port: int, unit: str, holder: str = "controller",
                           topics: Topics | None = None) -> AsyncIterator[UnitClient]:
    """An aiomqtt connection with a UnitClient fed by its own message loop."""
    async with aiomqtt.Client(host, port, identifier=f"{holder}-{uuid.uuid4().hex[:8]}",
                              socket_options=NO_DELAY_SOCKET_OPTIONS) as client:
        unit_client = UnitClient(client, unit, topics, holder)
        await unit_client.start()

        async def pump() -> None:
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                unit_client.feed(message.topic.value, payload)

        task = asyncio.create_task(pump())
        try:
            yield unit_client
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
