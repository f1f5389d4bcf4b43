"""Equipment under an exclusive lease, with safety on the unit (issue acceptance, over MQTT)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from hub.unit_client import connected_client
from provisioning.broker import MosquittoProcess
from tests.rig import probe
from tests.system.inproc import PUMP, running_unit, write_equipment_unit
from tests.system.processes import spawn, stop

pytestmark = pytest.mark.system


async def test_second_controller_is_denied_until_release(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    async with running_unit(tmp_path, "eq-a", mosquitto.port), \
            connected_client("127.0.0.1", mosquitto.port, "eq-a", holder="tsc-1") as first, \
            connected_client("127.0.0.1", mosquitto.port, "eq-a", holder="tsc-2") as second:
        granted = await first.acquire(ttl_s=30)
        assert granted["status"] == "done"
        assert granted["result"]["holder"] == "tsc-1" and granted["result"]["expires_in_s"] == 30
        denied = await second.acquire(ttl_s=30)
        assert denied["status"] == "rejected" and denied["error"]["kind"] == "denied"
        assert "tsc-1" in denied["error"]["message"]
        released = await first.call(None, "lease.release")
        assert released["status"] == "done"
        assert (await second.acquire(ttl_s=30))["status"] == "done"


async def test_command_without_or_with_stale_token_moves_nothing(mosquitto: MosquittoProcess,
                                                                   tmp_path: Path) -> None:
    async with running_unit(tmp_path, "eq-b", mosquitto.port) as rig, \
            connected_client("127.0.0.1", mosquitto.port, "eq-b") as ctl:
        no_token = await ctl.call("pump1", "on", lease=None)
        assert no_token["status"] == "rejected" and no_token["error"]["kind"] == "denied"
        await ctl.acquire()
        stale = ctl.token
        await ctl.call(None, "lease.release")
        await ctl.acquire()
        reply = await ctl.call("pump1", "on", lease=stale)
        assert reply["status"] == "rejected" and reply["error"]["kind"] == "denied"
        assert rig.pin(17).state == 0
        assert (await ctl.call("pump1", "on"))["status"] == "done"
        assert rig.pin(17).state == 1


async def test_lease_loss_turns_off_what_must_go_off(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    async with running_unit(tmp_path, "eq-c", mosquitto.port) as rig, \
            probe("127.0.0.1", mosquitto.port) as found, \
            connected_client("127.0.0.1", mosquitto.port, "eq-c", holder="tsc-lost") as ctl:
        await ctl.acquire(ttl_s=1)
        assert (await ctl.call("pump1", "on"))["status"] == "done"
        assert (await ctl.call("valve1", "on"))["status"] == "done"
        last_command_at = time.monotonic()  # every accepted command extended the lease to now + ttl
        # The probe may still hold the retained "off" from before the command: see "on" first.
        await found.wait_for(lambda: (s := found.module_state("eq-c", "pump1")) and s["outputs"].get("on"),
                             5, "pump1 on")
        state = await found.wait_for(
            lambda: (s := found.module_state("eq-c", "pump1")) and s["outputs"].get("on") is False and s,
            5, "pump1 off after the lease expired")
        assert time.monotonic() - last_command_at < 1 + 1, "off within ttl + 1 s"
        assert rig.pin(17).state == 0
        assert rig.pin(27).state == 1, "valve1 has on_controller_loss: hold"
        assert found.module_state("eq-c", "valve1")["outputs"]["on"] is True
        alarms = await found.wait_for(
            lambda: [e for e in found.on("lab/eq-c/pump1/event") if e["code"] == "controller_lost"], 5,
            "controller_lost alarm")
        assert alarms and alarms[0]["level"] == "alarm" and "tsc-lost" in alarms[0]["message"]
        assert state["lecis"] == "IDLE"


async def test_run_beyond_max_on_ends_at_max_on(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    async with running_unit(tmp_path, "eq-d", mosquitto.port) as rig, \
            connected_client("127.0.0.1", mosquitto.port, "eq-d") as ctl:
        await ctl.acquire()
        rig.pin(17).clear_states()
        reply = await ctl.call("pump1", "run", {"seconds": 10}, timeout=15)
        assert reply["status"] == "done", reply
        assert reply["result"]["limited_by"] == "max_on_s"
        on_for = next(s.timestamp for s in rig.pin(17).states[1:] if s.state == 0)
        assert abs(on_for - 2.0) < 0.1, f"pump ran {on_for:.3f} s; max_on_s is 2"
        statuses = [r["status"] for r in ctl.replies[reply["id"]]]
        assert statuses == ["accepted", "running", "done"]


async def test_estop_stops_a_dose_at_once_and_clear_restarts_nothing(mosquitto: MosquittoProcess,
                                                                     tmp_path: Path) -> None:
    slow_pump = PUMP.replace("max_on_s: 2", "max_on_s: 60").replace("ml_per_s: 1.0", "ml_per_s: 0.5")
    async with running_unit(tmp_path, "eq-e", mosquitto.port, {"pump1": slow_pump}) as rig, \
            connected_client("127.0.0.1", mosquitto.port, "eq-e") as ctl:
        await ctl.acquire()
        dose_id = await ctl.send("pump1", "dose", {"ml": 10})
        async with asyncio.timeout(5):
            while rig.pin(17).state != 1:
                await asyncio.sleep(0.005)
        sent = time.monotonic()
        await ctl.send(None, "ESTOP", lease=None)
        async with asyncio.timeout(5):
            while rig.pin(17).state != 0:
                await asyncio.sleep(0.001)
        assert rig.pin(17)._last_change - sent < 0.05
        await asyncio.sleep(0.2)
        assert ctl.replies[dose_id][-1]["status"] == "failed"
        assert rig.unit.modules["pump1"].state.value == "ESTOPPED"
        refused = await ctl.call("pump1", "on")
        assert refused["status"] == "rejected" and refused["error"]["kind"] == "state"
        cleared = await ctl.call(None, "CLEAR")
        assert cleared["status"] == "done"
        assert rig.unit.modules["pump1"].state.value == "IDLE"
        await asyncio.sleep(0.5)
        assert rig.pin(17).state == 0, "nothing restarts by itself after CLEAR"


async def test_sigterm_leaves_the_pump_off_in_the_retained_state(mosquitto: MosquittoProcess,
                                                                 tmp_path: Path) -> None:
    config = write_equipment_unit(tmp_path, "eq-f", mosquitto.port, {"pump1": PUMP.replace("max_on_s: 2",
                                                                                            "max_on_s: 60")})
    # gpiozero's own settings choose mock PWM pins, as anyone without a Pi would run it.
    proc = spawn(["edge", "run", "--config", str(config)], tmp_path / "unit.log",
                 env={"GPIOZERO_PIN_FACTORY": "mock", "GPIOZERO_MOCK_PIN_CLASS": "mockpwmpin"})
    try:
        async with connected_client("127.0.0.1", mosquitto.port, "eq-f") as ctl, \
                probe("127.0.0.1", mosquitto.port) as found:
            await found.wait_for(lambda: (s := found.last("lab/eq-f/$state")) and s["state"] == "ready", 15,
                                 "unit ready")
            assert (await ctl.acquire())["status"] == "done"
            await ctl.send("pump1", "run", {"seconds": 30})
            await found.wait_for(
                lambda: (s := found.module_state("eq-f", "pump1")) and s["outputs"]["on"], 5, "pump on")
        assert stop(proc, signal.SIGTERM) == 0
    finally:
        stop(proc)
    async with probe("127.0.0.1", mosquitto.port) as fresh:  # what a newcomer sees: the retained state
        state = await fresh.wait_for(lambda: fresh.module_state("eq-f", "pump1"), 5, "retained state")
        unit_state = await fresh.wait_for(lambda: fresh.last("lab/eq-f/$state"), 5, "retained unit state")
    assert state["outputs"]["on"] is False
    assert unit_state["state"] == "disconnected"


async def test_held_stop_button_estops_with_the_broker_down(outage_broker: MosquittoProcess,
                                                            tmp_path: Path) -> None:
    async with running_unit(tmp_path, "eq-g", outage_broker.port) as rig, \
            probe("127.0.0.1", outage_broker.port, pattern="lab/eq-g/#", persistent=True) as found, \
            connected_client("127.0.0.1", outage_broker.port, "eq-g") as ctl:
        await ctl.acquire(ttl_s=60)
        assert rig.unit.extras[0].led.mode == "steady", "a controller holds the lease"
        await ctl.call("valve1", "on")
        outage_broker.stop()
        await asyncio.sleep(0.3)
        stop_button = rig.pin(6)
        stop_button.drive_low()  # pressed (wired to ground, pull-up)
        await asyncio.sleep(0.8)  # longer than estop_hold_s = 0.5
        stop_button.drive_high()
        assert all(m.state.value == "ESTOPPED" for m in rig.unit.modules.values())
        assert rig.pin(27).state == 0 and rig.pin(17).state == 0
        assert rig.unit.extras[0].led.mode == "fast", "the status LED tells the bench it is ESTOPPED"
        outage_broker.start()
        state = await found.wait_for(
            lambda: (s := found.module_state("eq-g", "valve1")) and s["lecis"] == "ESTOPPED" and s,
            20, "ESTOPPED published once the broker is back")
        buttons = await found.wait_for(lambda: len(found.on("lab/eq-g/$button")) >= 2
                                       and found.on("lab/eq-g/$button"), 20, "both button messages")
    assert state["outputs"]["on"] is False
    # Pressed while the broker was away: still reported, for the hub's session log.
    assert [(b["button"], b["action"]) for b in buttons] == [("stop", "pressed"), ("stop", "held")]
