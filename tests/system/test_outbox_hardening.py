"""The outbox under a stuck or full disk, and a broker queue that holds what the outbox confirmed.

Units run as their own processes on a faulty disk made by bench/fault_shim.c
(LD_PRELOAD): fsync can be held for as long as a file exists (a stuck SD card),
and writes to the outbox can fail with ENOSPC (a full disk).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from bench.fault_shim import build_shim, shim_env
from edge.forwarder import Forwarder
from edge.outbox import Outbox
from hub.unit_client import connected_client
from lecis.mqtt_session import Connection, MqttSession, SessionConfig
from lecis.topics import Topics
from provisioning.broker import MosquittoProcess, find_mosquitto, queued_messages_for
from tests.rig import Probe, probe
from tests.system.processes import simulators, start_unit, stop

pytestmark = pytest.mark.system

PUMP = "module: pump1\ndriver: gpio.pump\npin: 17\nmax_on_s: 600\nml_per_s: 1.0\n"


def write_unit(tmp: Path, unit: str, port: int) -> Path:
    """A unit with a pH instrument at 10 Hz (on a simulator) and a pump on a mock pin."""
    (tmp / "dcd").mkdir(exist_ok=True)
    link = tmp / "dev" / "ph1"
    (tmp / "dcd" / "ph1.yaml").write_text(f"module: ph1\ndriver: ezo\nprobe: ph\nport: {link}\n"
                                          f"period_s: 0.1\n")
    (tmp / "dcd" / "pump1.yaml").write_text(PUMP)
    config = tmp / "unit.yaml"
    config.write_text(f"unit: {unit}\nbroker: {{host: 127.0.0.1, port: {port}, keepalive_s: 2}}\n"
                      f"data_dir: {tmp / 'data'}\nmodules: [dcd/ph1.yaml, dcd/pump1.yaml]\n")
    return config


async def wait_path(path: Path, timeout: float = 15.0) -> None:
    """For a file another process creates (no event to wait on)."""
    async with asyncio.timeout(timeout):
        while not path.exists():
            await asyncio.sleep(0.02)


def kept_seqs(found: Probe, unit: str, module: str) -> list[int]:
    """The seqs a hub keeps of a module's data and events: a seq not above the last one is a repeat."""
    topics = {f"lab/{unit}/{module}/data", f"lab/{unit}/{module}/event"}
    kept: list[int] = []
    for message in found.messages:
        if message.topic in topics and (not kept or message.payload["seq"] > kept[-1]):
            kept.append(message.payload["seq"])
    return kept


async def test_estop_reaches_the_retained_state_while_the_disk_is_stuck(mosquitto: MosquittoProcess,
                                                                      tmp_path: Path) -> None:
    # With an fsync that never returns, a unit that syncs or commits on its event loop stops
    # answering anything, ESTOP included. The outbox's writer thread is the only one to wait.
    shim = build_shim(tmp_path)
    hold, held = tmp_path / "fsync-hold", tmp_path / "fsync-held"
    with simulators(tmp_path, {"ph1": "ph"}, ["--speed", "20"]):
        config = write_unit(tmp_path, "disk-a", mosquitto.port)
        unit = start_unit(config, tmp_path / "unit.log", env=shim_env(shim, hold=hold, held=held))
        try:
            async with probe("127.0.0.1", mosquitto.port) as found, \
                    connected_client("127.0.0.1", mosquitto.port, "disk-a") as ctl:
                await found.wait_for(lambda: (s := found.last("lab/disk-a/$state")) and s["state"] == "ready",
                                     20, "unit ready")
                await found.wait_for(lambda: len(found.seqs("disk-a", "ph1")) >= 5, 15, "readings")
                assert (await ctl.acquire())["status"] == "done"
                assert (await ctl.call("pump1", "on"))["status"] == "done"
                hold.touch()
                await wait_path(held)  # the outbox's next checkpoint is now stuck in fsync
                seen_before = len(found.seqs("disk-a", "ph1"))
                estop = await ctl.call(None, "ESTOP", lease=None)
                assert estop["status"] == "done"
                state = await found.wait_for(
                    lambda: (s := found.module_state("disk-a", "pump1")) and s["lecis"] == "ESTOPPED" and s,
                    10, "pump ESTOPPED in its retained state")
                assert state["outputs"]["on"] is False
                status = await ctl.call(None, "STATUS", lease=None)  # still answering, disk still stuck
                assert status["status"] == "done"
                assert held.exists() and hold.exists()
                hold.unlink()  # the disk is back: what was measured meanwhile follows, no gap
                await found.wait_for(lambda: len(found.seqs("disk-a", "ph1")) >= seen_before + 20, 20,
                                     "readings after the disk came back")
        finally:
            hold.unlink(missing_ok=True)
            stop(unit)
    kept = kept_seqs(found, "disk-a", "ph1")
    assert kept == list(range(kept[0], kept[-1] + 1)), "gap in the readings"


async def test_a_full_disk_raises_an_alarm_and_the_unit_keeps_measuring(mosquitto: MosquittoProcess,
                                                                       tmp_path: Path) -> None:
    shim = build_shim(tmp_path)
    full = tmp_path / "disk-full"
    with simulators(tmp_path, {"ph1": "ph"}, ["--speed", "20"]):
        config = write_unit(tmp_path, "disk-b", mosquitto.port)
        unit = start_unit(config, tmp_path / "unit.log", env=shim_env(shim, enospc=full))
        try:
            async with probe("127.0.0.1", mosquitto.port) as found, \
                    connected_client("127.0.0.1", mosquitto.port, "disk-b") as ctl:
                await found.wait_for(lambda: (s := found.last("lab/disk-b/$state")) and s["state"] == "ready",
                                     20, "unit ready")
                await found.wait_for(lambda: len(found.seqs("disk-b", "ph1")) >= 5, 15, "readings")
                full.touch()
                alarm = await found.wait_for(
                    lambda: next((e for e in found.on("lab/disk-b/ph1/event") if e["code"] == "disk_full"),
                                 None), 15, "disk_full alarm")
                assert alarm["level"] == "alarm" and "free space" in alarm["message"]
                during = len(found.seqs("disk-b", "ph1"))
                # Measuring goes on, and so does control: the pump obeys and ESTOP works.
                await found.wait_for(lambda: len(found.seqs("disk-b", "ph1")) >= during + 10, 15,
                                     "readings while the disk is full")
                assert (await ctl.acquire())["status"] == "done"
                assert (await ctl.call("pump1", "on"))["status"] == "done"
                assert (await ctl.call(None, "ESTOP", lease=None))["status"] == "done"
                await found.wait_for(
                    lambda: (s := found.module_state("disk-b", "pump1")) and s["lecis"] == "ESTOPPED", 10,
                    "pump ESTOPPED")
                full.unlink()
                status = await ctl.call(None, "STATUS", lease=None)
                assert status["status"] == "done"
                after = len(found.seqs("disk-b", "ph1"))
                await found.wait_for(lambda: len(found.seqs("disk-b", "ph1")) >= after + 10, 15,
                                     "readings after the disk has room again")
        finally:
            full.unlink(missing_ok=True)
            stop(unit)
    kept = kept_seqs(found, "disk-b", "ph1")
    assert kept == list(range(kept[0], kept[-1] + 1)), "gap in the readings"


# ---- the broker's queue for an offline persistent session ----------------------------------------

OUTBOX = 2000  # the scaled-down outbox size: its whole content is replayed while the hub is away
HUB = "test-hub-recorder"


async def replay_with_hub_away(broker: MosquittoProcess, tmp: Path) -> list[int]:
    """A full outbox replayed while the hub's persistent session is offline; the seqs the hub then gets."""
    hub = SessionConfig(port=broker.port, client_id=HUB, clean_session=False)
    async with MqttSession(hub, subscriptions=["lab/u1/+/data"]):
        pass  # the broker keeps the session and its subscription from now on
    with Outbox(tmp / "outbox.sqlite3", max_messages=OUTBOX) as outbox:
        for i in range(OUTBOX):
            outbox.append("ph1", "data", {"readings": [{"ts": "2026-11-21T15:04:05.123Z",
                                                         "values": {"ph": i}}]})
        assert outbox.flush()
        forwarder = Forwarder(outbox, Topics(), "u1")

        async def on_connect(connection: Connection) -> list[Coroutine[Any, Any, None]]:
            return [forwarder.run(connection)]

        async with MqttSession(SessionConfig(port=broker.port, client_id="labedge-unit-u1"),
                               on_connect=on_connect):
            async with asyncio.timeout(60):
                while outbox.count():  # every message confirmed by the broker and deleted
                    await asyncio.sleep(0.02)
    received: list[int] = []
    idle = asyncio.Event()

    def on_message(topic: str, payload: bytes) -> None:
        received.append(json.loads(payload)["seq"])
        if len(received) == OUTBOX:
            idle.set()

    async with MqttSession(hub, subscriptions=["lab/u1/+/data"], on_message=on_message):
        # Whatever the broker queued arrives right after the connection; a short quiet
        # spell after the last one means the queue is empty.
        async with asyncio.timeout(30):
            while True:
                count = len(received)
                try:
                    await asyncio.wait_for(idle.wait(), 1.0)
                    break
                except TimeoutError:
                    if len(received) == count:
                        break
    return received


@pytest.fixture
def mosquitto_binary() -> None:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is missing; `make test` installs it")


async def test_the_broker_queues_a_whole_outbox_for_an_offline_persistent_session(
        mosquitto_binary: None, tmp_path: Path) -> None:
    assert queued_messages_for(OUTBOX) >= OUTBOX
    with MosquittoProcess(outbox_max_messages=OUTBOX) as broker:
        received = await replay_with_hub_away(broker, tmp_path)
    assert received == list(range(1, OUTBOX + 1))


async def test_the_old_queue_limit_loses_what_the_outbox_confirmed(mosquitto_binary: None,
                                                                   tmp_path: Path) -> None:
    # The old setting: 100,000 queued for a 1,000,000 outbox, here scaled down the same way.
    with MosquittoProcess(max_queued=OUTBOX // 10) as broker:
        received = await replay_with_hub_away(broker, tmp_path)
    assert len(received) < OUTBOX  # what the test above guards against
