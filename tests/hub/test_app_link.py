"""The hub's MQTT session against real Mosquitto: decoded at the boundary, persistent, its own state."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt

from hub.config import HubConfig
from hub.link import HubLink, LinkHandlers
from lecis.unit_config import BrokerConfig
from lecis.wire import Data
from provisioning.broker import MosquittoProcess
from tests.rig import probe

DATA = {"seq": 1, "hist": False, "readings": [{"ts": "2026-12-01T10:00:00.000Z", "values": {"ph": 7.0}}]}


def hub_config(tmp: Path, port: int, hub: str = "hub-1") -> HubConfig:
    return HubConfig(hub, str(tmp / "hub.yaml"), BrokerConfig(port=port, keepalive_s=2), tmp / "data")


class Collect:
    def __init__(self) -> None:
        self.data: list[tuple[str, str, Data]] = []
        self.changed = asyncio.Event()
        self.handlers = LinkHandlers(data=self.on_data)

    def on_data(self, unit: str, module: str, data: Data, payload: dict[str, Any], at: float) -> None:
        self.data.append((unit, module, data))
        self.changed.set()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.data) < count:
                self.changed.clear()
                await self.changed.wait()


async def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


def data(seq: int) -> bytes:
    return json.dumps({**DATA, "seq": seq}).encode()


async def test_bad_messages_are_counted_and_the_link_goes_on(tmp_path: Path,
                                                             mosquitto: MosquittoProcess) -> None:
    got = Collect()
    async with HubLink(hub_config(tmp_path, mosquitto.port, "hub-bad"), got.handlers) as link:
        await publish(mosquitto.port, [
            ("lab/bench-9/ph1/data", b"not json"),
            ("lab/bench-9/ph1/data", json.dumps({**DATA, "seq": "one"}).encode()),
            ("lab/bench-9/$birth", b"[]"),
            ("lab/bench-9/ph1/data", data(7)),
        ])
        await got.wait(1)
    assert [(u, m, d.seq) for u, m, d in got.data] == [("bench-9", "ph1", 7)]
    assert link.stats["bad.data"] == 2 and link.stats["bad.$birth"] == 1
    assert link.stats["received.data"] == 3


async def test_a_handler_that_raises_does_not_stop_the_link(tmp_path: Path,
                                                            mosquitto: MosquittoProcess) -> None:
    got = Collect()
    calls = 0

    def flaky(unit: str, module: str, value: Data, payload: dict[str, Any], at: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        got.on_data(unit, module, value, payload, at)

    async with HubLink(hub_config(tmp_path, mosquitto.port, "hub-flaky"), LinkHandlers(data=flaky)) as link:
        await publish(mosquitto.port, [("lab/bench-8/ph1/data", data(1)), ("lab/bench-8/ph1/data", data(2))])
        await got.wait(1)
    assert [d.seq for _, _, d in got.data] == [2]
    assert link.stats["handler_errors"] == 1


async def test_hub_state_is_retained_online_then_offline(tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    async with probe("127.0.0.1", mosquitto.port, pattern="lab/hub/$state") as found:
        async with HubLink(hub_config(tmp_path, mosquitto.port, "hub-state"), LinkHandlers()):
            await found.wait_for(lambda: found.on("lab/hub/$state"), 10, "hub online")
            assert found.last("lab/hub/$state")["online"] is True
        await found.wait_for(lambda: found.last("lab/hub/$state")["online"] is False, 10, "hub offline")
    assert not found.violations


async def test_readings_sent_while_the_hub_was_away_arrive_when_it_returns(
        tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    config = hub_config(tmp_path, mosquitto.port, "hub-away")
    async with HubLink(config, LinkHandlers()):
        pass  # the broker now holds a persistent session for labedge-hub-hub-away
    await publish(mosquitto.port, [("lab/bench-7/ph1/data", data(seq)) for seq in range(1, 51)])
    got = Collect()
    async with HubLink(config, got.handlers):
        await got.wait(50)
    assert [d.seq for _, _, d in got.data] == list(range(1, 51))


async def test_the_hubs_own_topics_are_not_taken_for_a_units(tmp_path: Path,
                                                             mosquitto: MosquittoProcess) -> None:
    states: list[str] = []
    handlers = LinkHandlers(module_state=lambda unit, module, *_: states.append(f"{unit}/{module}"))
    async with HubLink(hub_config(tmp_path, mosquitto.port, "hub-own"), handlers) as link:
        await link.publish("lab/hub/experiment/state", b'{"state": "running"}', retain=False)
        await publish(mosquitto.port, [("lab/bench-6/ph1/state", json.dumps({
            "lecis": "IDLE", "control": "REMOTE", "outputs": {}, "error": None,
            "ts": "2026-12-01T10:00:00.000Z"}).encode())])
        async with asyncio.timeout(10):
            while "bench-6/ph1" not in states:
                await asyncio.sleep(0.02)
    assert [s for s in states if s.startswith("bench-6/")] == ["bench-6/ph1"]  # the broker is shared
    assert link.stats["bad.state"] == 0
