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
        run = await ctl.call("bad", "run", {"seconds": 30})
        assert run["status"] == "failed" and "bad_channel D9" in run["error"]["message"]
        assert rig.unit.modules["bad"].state.value == "IDLE"


def test_modules_share_a_board_but_not_a_channel(tmp_path: Path) -> None:
    from lecis.config_loader import load_unit_config
    from lecis.errors import ConfigError
    from tests.system.inproc import write_equipment_unit

    port = tmp_path / "ttyACM0"
    ezo = f"module: ph1\ndriver: ezo\nprobe: ph\nport: {port}\n"
    config = write_equipment_unit(tmp_path, "br-cfg", 1883, {
        "p1": PUMP.format(port=port, channel="D2", max_on_s=5).replace("bpump", "p1"),
        "p2": PUMP.format(port=port, channel="D4", max_on_s=5).replace("bpump", "p2"),
        "p3": PUMP.format(port=port, channel="D2", max_on_s=5).replace("bpump", "p3"),
        "ph1": ezo}, extra="")
    with pytest.raises(ConfigError) as caught:
        load_unit_config(config, check_ports=False)
    messages = [str(p) for p in caught.value.problems]
    assert len(messages) == 2, messages
    assert "p3.yaml:4: channel: channel D2 of the board on" in messages[0]
    assert "already used by module p1" in messages[0]
    assert "ph1.yaml:4: port: port" in messages[1] and "already used by the board of module p1" in messages[1]


async def test_pwm_duty_and_stepper_rate_from_speed_on_the_firmware(mosquitto: MosquittoProcess,
                                                                    tmp_path: Path) -> None:
    from tests.firmware_bridge.simrig import require_rig, start_rig

    require_rig()
    with start_rig(log=tmp_path / "simrig.log") as rig:
        dcds = {"duty": PUMP.format(port=rig.pty, channel="D3", max_on_s=30).replace("bpump", "duty"),
                "stepper": (PUMP.format(port=rig.pty, channel="S1", max_on_s=30).replace("bpump", "stepper")
                            + "max_rate_hz: 400\nreverse: true\n")}
        async with running_unit(tmp_path, "br-speed", mosquitto.port, dcds) as unit, \
                connected_client("127.0.0.1", mosquitto.port, "br-speed") as ctl:
            await until(lambda: all(m.state.value == "IDLE" for m in unit.unit.modules.values()))
            await ctl.acquire()
            assert (await ctl.call("duty", "on", {"speed": 0.5}))["status"] == "done"
            assert rig.pwm("D3") == 128
            assert (await ctl.call("stepper", "on", {"speed": 0.25}))["status"] == "done"
            await asyncio.to_thread(rig.wait_sim_us, 30_000)
            steps = rig.steps("S1")
            assert steps.direction == 0, "reverse: the direction pin low"
            assert steps.interval_us == pytest.approx(1_000_000 / 100, rel=0.02), "0.25 x 400 steps/s"
            state = await ctl.call("stepper", "STATUS", lease=None)
            assert state["result"]["outputs"]["speed"] == 0.25 and state["result"]["outputs"]["raw"] == -100
            assert (await ctl.call("duty", "off"))["status"] == "done"
            assert (await ctl.call("stepper", "off"))["status"] == "done"
            assert rig.pwm("D3") == 0
            count = rig.steps("S1").count
            await asyncio.to_thread(rig.wait_sim_us, 30_000)
            assert rig.steps("S1").count == count
