"""The `bridge` driver in a unit, reached over MQTT, against a board on a pseudo-terminal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware_bridge.fakeboard import FakeBoard
from hub.unit_client import connected_client
from provisioning.broker import MosquittoProcess
from tests.system.inproc import running_unit

PUMP = """module: bpump
driver: bridge
port: {port}
channel: {channel}
max_on_s: {max_on_s}
watchdog_s: 0.6
ml_per_s: 1.0
on_controller_loss: "off"
"""


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[FakeBoard]:
    fake = await FakeBoard.open(tmp_path / "ttyBOARD")
    try:
        yield fake
    finally:
        await fake.close()


async def until(check: object, timeout: float = 5.0, what: str = "") -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_pump_on_off_and_refused_channel(mosquitto: MosquittoProcess, tmp_path: Path,
                                               board: FakeBoard) -> None:
    dcds = {"bpump": PUMP.format(port=board.port, channel="D2", max_on_s=30),
            "bad": PUMP.format(port=board.port, channel="D9", max_on_s=30).replace("bpump", "bad")}
    async with running_unit(tmp_path, "br-a", mosquitto.port, dcds) as rig, \
            connected_client("127.0.0.1", mosquitto.port, "br-a") as ctl:
        await until(lambda: rig.unit.modules["bpump"].state.value == "IDLE")
        await ctl.acquire()
        reply = await ctl.call("bpump", "on")
        assert reply["status"] == "done", reply
        assert board.levels["D2"] == 1
        await asyncio.sleep(1.5)  # longer than watchdog_s: refreshed, still on
        assert board.levels["D2"] == 1 and not board.expired
        reply = await ctl.call("bpump", "off")
        assert reply["status"] == "done"
        assert board.levels["D2"] == 0
        refused = await ctl.call("bad", "on")
        assert refused["status"] == "rejected", refused
        assert refused["error"]["param"] == "channel" and "bad_channel" in refused["error"]["message"]
        assert rig.unit.modules["bad"].state.value == "IDLE"
