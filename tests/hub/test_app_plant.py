"""The MQTT plant against real Mosquitto and a real unit: leases held and re-taken, commands checked first."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt

from hub.config import HubConfig
from hub.link import HubLink, LinkHandlers
from hub.mqtt_plant import MqttPlant
from lecis.unit_config import BrokerConfig
from provisioning.broker import MosquittoProcess
from tests.rig import probe
from tests.system.inproc import running_unit


def unit_dir(tmp: Path) -> Path:
    (tmp / "u").mkdir(exist_ok=True)
    return tmp / "u"


class Presence:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []
        self.changed = asyncio.Event()

    def __call__(self, unit: str, online: bool, why: str) -> None:
        self.seen.append((unit, online))
        self.changed.set()

    async def wait(self, unit: str, online: bool, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not self.seen or self.seen[-1] != (unit, online):
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def hub_plant(tmp: Path, port: int, units: list[str], hub: str, ttl: float = 30.0,
                    timeout: float = 5.0, wait: float = 0.5) -> AsyncIterator[tuple[MqttPlant, Presence]]:
    config = HubConfig(hub, "hub.yaml", BrokerConfig(port=port, keepalive_s=2), tmp / "hub")
    handlers = LinkHandlers()
    presence = Presence()
    link = HubLink(config, handlers)
    plant = MqttPlant(link.session, hub, units, lease_ttl_s=ttl, timeout_s=timeout, on_presence=presence,
                      offline_wait_s=wait, connected=link.connected)
    handlers.reply, handlers.birth = plant.feed_reply, plant.on_birth
    handlers.unit_state = plant.on_unit_state
    async with link, plant:
        yield plant, presence


async def test_the_lease_is_taken_and_a_command_runs(tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    async with running_unit(unit_dir(tmp_path), "plant-1", mosquitto.port) as unit, \
            hub_plant(tmp_path, mosquitto.port, ["plant-1"], "hub-p1") as (plant, presence):
        await presence.wait("plant-1", True)
        assert unit.unit.lease.holder() == "hub-p1"
        outcome = await plant.command("plant-1", "valve1", "on", {}, command_id="e-1")
        assert outcome.ok
        assert unit.pin(27).state == 1
        assert unit.unit.replies.get("e-1") is not None


async def test_a_command_the_birth_refuses_is_never_sent(tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    async with running_unit(unit_dir(tmp_path), "plant-2", mosquitto.port), \
            hub_plant(tmp_path, mosquitto.port, ["plant-2"], "hub-p2") as (plant, presence), \
            probe("127.0.0.1", mosquitto.port, pattern="lab/plant-2/+/cmd") as sent:
        await presence.wait("plant-2", True)
        bad_arg = await plant.command("plant-2", "pump1", "run", {"seconds": -1})
        unknown = await plant.command("plant-2", "pump1", "fly", {})
        no_module = await plant.command("plant-2", "pump9", "on", {})
        good = await plant.command("plant-2", "pump1", "off", {})
        await sent.wait_for(lambda: sent.messages, 5, "the good command on the wire")
    assert bad_arg.status == "rejected" and bad_arg.error is not None
    assert (bad_arg.error["kind"], bad_arg.error["param"]) == ("validation", "seconds")
    assert unknown.status == "rejected" and unknown.error is not None
    assert unknown.error["kind"] == "unknown_command"
    assert no_module.status == "rejected"
    assert good.ok
    assert [m.payload["cmd"] for m in sent.messages] == ["off"]


async def test_the_lease_is_renewed_before_it_expires(tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    async with running_unit(unit_dir(tmp_path), "plant-3", mosquitto.port) as unit, \
            probe("127.0.0.1", mosquitto.port, pattern="lab/plant-3/$cmd") as sent, \
            hub_plant(tmp_path, mosquitto.port, ["plant-3"], "hub-p3", ttl=1.5) as (plant, presence):
        await presence.wait("plant-3", True)
        assert (await plant.command("plant-3", "valve1", "on", {})).ok

        def renewals() -> int:
            return sum(1 for m in sent.messages if m.payload["cmd"] == "lease.renew")
        # Seven renewals a third of a ttl apart span more than two ttls: only they kept the lease.
        await sent.wait_for(lambda: renewals() >= 7, 15, "seven lease renewals")
        assert unit.unit.lease.holder() == "hub-p3"
        assert (await plant.command("plant-3", "pump1", "off", {})).ok
        assert ("plant-3", False) not in presence.seen


async def test_a_unit_that_goes_and_comes_back_is_reported_and_leased_again(
        tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    async with hub_plant(tmp_path, mosquitto.port, ["plant-4"], "hub-p4") as (plant, presence):
        async with running_unit(unit_dir(tmp_path), "plant-4", mosquitto.port):
            await presence.wait("plant-4", True)
        await presence.wait("plant-4", False)
        refused = await plant.command("plant-4", "valve1", "on", {})
        assert refused.status == "rejected"
        async with running_unit(unit_dir(tmp_path), "plant-4", mosquitto.port) as unit:
            await presence.wait("plant-4", True)
            assert unit.unit.lease.holder() == "hub-p4"
            assert (await plant.command("plant-4", "valve1", "on", {})).ok
    assert presence.seen[:3] == [("plant-4", True), ("plant-4", False), ("plant-4", True)]


async def test_no_final_reply_is_a_timeout(tmp_path: Path, mosquitto: MosquittoProcess) -> None:
    """A unit that grants the lease but never answers its module commands."""
    birth = {"unit": "mute-1", "version": "0", "boot": "b1", "ts": "2026-12-01T10:00:00.000Z",
             "modules": {"valve1": {"kind": "equipment", "driver": "gpio.switch", "readings": [],
                                    "commands": {"on": {"params": {}}}, "on_controller_loss": "hold"}}}

    async def mute_unit(client: aiomqtt.Client) -> None:
        await client.subscribe("lab/mute-1/$cmd", qos=1)
        async for message in client.messages:
            command = json.loads(message.payload if isinstance(message.payload, bytes) else b"{}")
            await client.publish("lab/mute-1/$reply", json.dumps({
                "id": command["id"], "status": "done", "error": None, "ts": "2026-12-01T10:00:00.000Z",
                "result": {"token": "t", "holder": "hub-p5", "expires_in_s": 30}}), qos=1)

    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as fake:
        await fake.publish("lab/mute-1/$birth", json.dumps(birth), qos=1, retain=True)
        ready = {"state": "ready", "boot": "b1", "ts": "2026-12-01T10:00:00.000Z"}
        await fake.publish("lab/mute-1/$state", json.dumps(ready), qos=1, retain=True)
        responder = asyncio.create_task(mute_unit(fake))
        try:
            async with hub_plant(tmp_path, mosquitto.port, ["mute-1"], "hub-p5",
                                 timeout=0.5) as (plant, presence):
                await presence.wait("mute-1", True)
                outcome = await plant.command("mute-1", "valve1", "on", {})
        finally:
            responder.cancel()
            await fake.publish("lab/mute-1/$birth", b"", retain=True)
            await fake.publish("lab/mute-1/$state", b"", retain=True)
    assert outcome.status == "timeout"
