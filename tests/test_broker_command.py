"""`labedge broker`: Mosquitto when installed, the embedded broker otherwise (or when asked)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from provisioning.broker import free_port, wait_listening
from tests.system.processes import spawn, stop


@pytest.mark.parametrize("embedded", [False, True])
async def test_broker_command_serves_mqtt(tmp_path: Path, embedded: bool) -> None:
    port = free_port()
    args = ["broker", "--port", str(port), "--dir", str(tmp_path / "broker")]
    proc = spawn(args + (["--embedded"] if embedded else []), tmp_path / "broker.log")
    try:
        await asyncio.to_thread(wait_listening, "127.0.0.1", port, 15.0)
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe("lab/t", qos=1)
            await client.publish("lab/t", b"hello", qos=1)
            async with asyncio.timeout(5):
                async for message in client.messages:
                    assert message.payload == b"hello"
                    break
    finally:
        assert stop(proc) == 0, (tmp_path / "broker.log").read_text()
