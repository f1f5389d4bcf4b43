"""What the session system tests share: a hub process without a script, hub commands over MQTT, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt

from tests.rig import Probe
from tests.system.hub_rig import start_hub, write_hub
from tests.system.processes import stop


class HubCaller:
    """Sends `lab/hub/$cmd` commands and waits for their final reply (seen by the probe)."""

    def __init__(self, client: aiomqtt.Client, found: Probe) -> None:
        self.client = client
        self.found = found

    async def send_raw(self, payload: bytes) -> None:
        await self.client.publish("lab/hub/$cmd", payload, qos=1)

    async def call(self, cmd: str, args: dict[str, Any] | None = None, timeout: float = 15.0,
                   command_id: str | None = None) -> dict[str, Any]:
        cid = command_id or str(uuid.uuid4())
        await self.send_raw(json.dumps({"id": cid, "cmd": cmd, "args": args or {}}).encode())
        return await self.reply(cid, timeout)

    async def reply(self, cid: str, timeout: float = 15.0) -> dict[str, Any]:
        def final() -> dict[str, Any] | None:
            for reply in self.found.on("lab/hub/$reply"):
                if isinstance(reply, dict) and reply.get("id") == cid and \
                        reply.get("status") in ("done", "failed", "rejected"):
                    return reply
            return None

        result: dict[str, Any] = await self.found.wait_for(final, timeout, f"the hub's reply to {cid}")
        return result

    async def until_answering(self, timeout: float = 30.0) -> None:
        """Until the hub answers a session command (it has started and subscribed)."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    await self.call("session.list", {}, timeout=1.0)
                    return
                except AssertionError:
                    continue


@contextlib.asynccontextmanager
async def caller(port: int, found: Probe) -> AsyncIterator[HubCaller]:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"caller-{uuid.uuid4().hex[:8]}") as client:
        yield HubCaller(client, found)


def session_of(found: Probe, unit: str) -> dict[str, Any]:
    """The latest retained `lab/hub/sessions/UNIT` seen."""
    value = found.last(f"lab/hub/sessions/{unit}")
    return value if isinstance(value, dict) else {}


@contextlib.asynccontextmanager
async def running_hub(tmp: Path, port: int, hub_id: str, log_name: str = "hub.log",
                      extra: str = "") -> AsyncIterator[subprocess.Popen[bytes]]:
    config = write_hub(tmp / "hub", port, None, hub=hub_id, extra=extra)
    proc = start_hub(config, tmp / log_name)
    try:
        yield proc
    finally:
        stop(proc)


def hub_config(tmp: Path) -> Path:
    return tmp / "hub" / "hub.yaml"


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`labedge session ...` as a user runs it."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "labedge", "session", *args], capture_output=True, text=True,
        timeout=60)
