"""Output limits and promises that survive restarts, seen through MQTT and the mock pins' own history.

A restart is the Unit stopped and a new one started on the same data_dir; the
"process died" case is a unit process killed with SIGKILL in the middle of a dose.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import signal
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edge.durable import DurableState
from hub.unit_client import UnitClient, connected_client
from provisioning.broker import MosquittoProcess
from tests.rig import Probe, probe
from tests.system.inproc import VALVE, running_unit, write_equipment_unit
from tests.system.processes import spawn, stop

pytestmark = pytest.mark.system

# The lateness allowed to a cut made by a timer on a loaded 2-core machine; the defects
# overshoot by seconds (a whole max_on_s and more).
TOL_S = 0.1
PUMP_PIN = 17
VALVE_PIN = 27
FAST_PUMP = """module: pump1
driver: gpio.pump
pin: 17
max_on_s: 2
ml_per_s: 50.0
max_ml_per_hour: 100
on_controller_loss: "off"
"""
SLOW_PUMP = """module: pump1
driver: gpio.pump
pin: 17
max_on_s: 60
ml_per_s: 1.0
max_ml_per_hour: 10
on_controller_loss: "off"
"""
SHORT_VALVE = VALVE.replace("max_on_s: 100", "max_on_s: 2")


def on_intervals(pin: Any) -> list[float]:
    """Seconds of each on-interval, from the mock pin's recorded changes (the one in progress too)."""
    states = list(pin.states)
    found = [after.timestamp for before, after in itertools.pairwise(states) if before.state]
    if states and states[-1].state:
        found.append(time.monotonic() - pin._last_change)
    return found


async def wait_pin(pin: Any, on: bool, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while bool(pin.state) != on:
            await asyncio.sleep(0.002)


def final(ctl: UnitClient, command_id: str) -> dict[str, Any] | None:
    for reply in reversed(ctl.replies.get(command_id, [])):
        if reply["status"] in ("done", "failed", "rejected"):
            return reply
    return None


async def wait_final(ctl: UnitClient, command_id: str, timeout: float = 15.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while (reply := final(ctl, command_id)) is None:
            await asyncio.sleep(0.01)
    return reply


# ---- item 4: max_on_s bounds an on-stretch -----------------------------------------------------------
@pytest.mark.parametrize(("module", "cmd", "args", "pin_number"), [
    ("pump1", "run", {"seconds": 10}, PUMP_PIN),
    ("valve1", "pulse", {"seconds": 8}, VALVE_PIN),
])
async def test_pause_and_resume_do_not_restart_max_on(mosquitto: MosquittoProcess, tmp_path: Path,
                                                      module: str, cmd: str, args: dict[str, Any],
                                                      pin_number: int) -> None:
    name = f"lim-p-{cmd}"
    no_hour_cap = FAST_PUMP.replace("max_ml_per_hour: 100", "max_ml_per_hour: null")
    dcds = {"pump1": no_hour_cap, "valve1": SHORT_VALVE}
    async with running_unit(tmp_path, name, mosquitto.port, dcds) as rig, \
            connected_client("127.0.0.1", mosquitto.port, name) as ctl:
        await ctl.acquire()
        pin = rig.pin(pin_number)
        pin.clear_states()
        command_id = await ctl.send(module, cmd, args)
        for _ in range(8):
            await asyncio.sleep(1.5)
            if final(ctl, command_id) is not None:
                break
            await ctl.call(module, "PAUSE")
            await asyncio.sleep(1.5)  # paused longer than min_off_s: the command keeps its stretch
            await ctl.call(module, "RESUME")
        reply = await wait_final(ctl, command_id)
        assert reply["status"] == "done" and reply["result"]["limited_by"] == "max_on_s", reply
        on_time = sum(on_intervals(pin))
        assert on_time <= 2.0 + TOL_S, f"{module} was on {on_time:.3f} s in one command; max_on_s is 2"
        assert pin.state == 0


async def test_back_to_back_off_on_is_one_stretch_and_a_spent_one_is_refused(mosquitto: MosquittoProcess,
                                                                           tmp_path: Path) -> None:
    async with running_unit(tmp_path, "lim-b", mosquitto.port, {"valve1": SHORT_VALVE}) as rig, \
            connected_client("127.0.0.1", mosquitto.port, "lim-b") as ctl:
        await ctl.acquire()
        pin = rig.pin(VALVE_PIN)
        pin.clear_states()
        assert (await ctl.call("valve1", "on"))["status"] == "done"
        await asyncio.sleep(1.5)
        assert (await ctl.call("valve1", "off"))["status"] == "done"
        assert (await ctl.call("valve1", "on"))["status"] == "done"
        await wait_pin(pin, False)
        intervals = on_intervals(pin)
        assert len(intervals) == 2 and sum(intervals) <= 2.0 + TOL_S, intervals
        refused = await ctl.call("valve1", "on")
        assert refused["status"] == "rejected" and refused["error"]["kind"] == "state", refused
        assert "max_on_s=2 s in this stretch; it must stay off" in refused["error"]["message"]
        assert pin.state == 0
        await asyncio.sleep(1.05)  # min_off_s = 1 (the default)
        assert (await ctl.call("valve1", "on"))["status"] == "done"


async def test_repeated_runs_share_one_stretch(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    async with running_unit(tmp_path, "lim-r", mosquitto.port, {"pump1": FAST_PUMP}) as rig, \
            connected_client("127.0.0.1", mosquitto.port, "lim-r") as ctl:
        await ctl.acquire()
        pin = rig.pin(PUMP_PIN)
        pin.clear_states()
        first = await ctl.call("pump1", "run", {"seconds": 1.5})
        second = await ctl.call("pump1", "run", {"seconds": 1.5})
        assert first["result"] == {"ran_s": pytest.approx(1.5, abs=TOL_S)}
        assert second["result"]["limited_by"] == "max_on_s", second
        assert sum(on_intervals(pin)) <= 2.0 + TOL_S


# ---- item 5: max_ml_per_hour is a hard cap ----------------------------------------------------------
async def test_on_is_cut_when_the_hour_is_full(mosquitto: MosquittoProcess, tmp_path: Path) -> None:
    pump = FAST_PUMP.replace("max_on_s: 2", "max_on_s: 10")
    async with running_unit(tmp_path, "lim-v", mosquitto.port, {"pump1": pump}) as rig, \
            probe("127.0.0.1", mosquitto.port, pattern="lab/lim-v/#") as found, \
            connected_client("127.0.0.1", mosquitto.port, "lim-v") as ctl:
        await ctl.acquire()
        pin = rig.pin(PUMP_PIN)
        pin.clear_states()
        assert (await ctl.call("pump1", "dose", {"ml": 89.8}))["status"] == "done"
        await asyncio.sleep(1.05)  # a fresh stretch, so only the hour can cut the next `on`
        assert (await ctl.call("pump1", "on"))["status"] == "done"
        await wait_pin(pin, False)
        delivered = sum(on_intervals(pin)) * 50.0
        assert delivered <= 100.0 + TOL_S * 50.0, f"{delivered:.1f} ml in the hour; max_ml_per_hour is 100"
        event = await found.wait_for(
            lambda: [e for e in found.on("lab/lim-v/pump1/event") if e["code"] == "max_ml_per_hour"], 5,
            "a max_ml_per_hour event")
        assert event[0]["level"] == "warning"
        refused = await ctl.call("pump1", "run", {"seconds": 1})
        assert refused["status"] == "rejected" and refused["error"]["kind"] == "state"
        # The refusal names what the hour holds: the limit, give or take the cut's timing (TOL_S).
        said = re.search(r"already pumped (\d+(?:\.\d+)?) ml in the last hour", refused["error"]["message"])
        assert said, refused["error"]["message"]
        assert 100.0 <= float(said.group(1)) <= 100.0 + TOL_S * 50.0, refused["error"]["message"]


async def test_a_run_is_cut_and_a_dose_that_does_not_fit_is_rejected(mosquitto: MosquittoProcess,
                                                                      tmp_path: Path) -> None:
    async with running_unit(tmp_path, "lim-w", mosquitto.port, {"pump1": SLOW_PUMP}) as rig, \
            connected_client("127.0.0.1", mosquitto.port, "lim-w") as ctl:
        await ctl.acquire()
        pin = rig.pin(PUMP_PIN)
        assert (await ctl.call("pump1", "dose", {"ml": 9.5}))["status"] == "done"
        await asyncio.sleep(1.05)
        too_much = await ctl.call("pump1", "dose", {"ml": 1})
        assert too_much["status"] == "rejected" and too_much["error"]["kind"] == "validation"
        assert too_much["error"]["message"].startswith("dose of 1 ml would make 10.5")
        pin.clear_states()
        cut = await ctl.call("pump1", "run", {"seconds": 5})
        assert cut["status"] == "done" and cut["result"]["limited_by"] == "max_ml_per_hour", cut
        assert sum(on_intervals(pin)) == pytest.approx(0.5, abs=TOL_S)


# ---- item 6: limits and command ids survive restarts -----------------------------------------------
async def test_the_hour_and_the_reply_log_survive_a_restart(mosquitto: MosquittoProcess,
                                                            tmp_path: Path) -> None:
    dcds = {"pump1": SLOW_PUMP}
    async with connected_client("127.0.0.1", mosquitto.port, "lim-s") as ctl:
        async with running_unit(tmp_path, "lim-s", mosquitto.port, dcds):
            await ctl.acquire()
            dose = await ctl.call("pump1", "dose", {"ml": 2}, command_id="dose-before-restart")
            assert dose["status"] == "done"
            await asyncio.sleep(1.05)
            assert (await ctl.call("pump1", "dose", {"ml": 7}))["status"] == "done"  # 9 of 10 ml
        async with running_unit(tmp_path, "lim-s", mosquitto.port, dcds) as again:
            await ctl.acquire()
            pin = again.pin(PUMP_PIN)
            pin.clear_states()
            refused = await ctl.call("pump1", "dose", {"ml": 7})
            assert refused["status"] == "rejected", "the hour's 9 ml are remembered"
            expected = r"dose of 7 ml would make 16(\.0\d*)? ml in the last hour; max_ml_per_hour is 10"
            assert re.fullmatch(expected, refused["error"]["message"]), refused
            ctl.replies.pop("dose-before-restart")
            repeated = await ctl.call("pump1", "dose", {"ml": 2}, command_id="dose-before-restart")
            assert repeated == dose, "answered again with the earlier outcome"
            assert pin.states[1:] == [], "and not executed twice"


async def test_a_restart_inside_an_on_stretch_gives_no_fresh_max_on(mosquitto: MosquittoProcess,
                                                                    tmp_path: Path) -> None:
    dcds = {"valve1": SHORT_VALVE + "min_off_s: 5\n"}
    async with connected_client("127.0.0.1", mosquitto.port, "lim-t") as ctl:
        async with running_unit(tmp_path, "lim-t", mosquitto.port, dcds) as first:
            await ctl.acquire()
            first_pin = first.pin(VALVE_PIN)
            first_pin.clear_states()
            assert (await ctl.call("valve1", "on"))["status"] == "done"
            await asyncio.sleep(1.5)
        before = on_intervals(first_pin)  # on until the unit stopped
        async with running_unit(tmp_path, "lim-t", mosquitto.port, dcds) as again:
            await ctl.acquire()
            pin = again.pin(VALVE_PIN)
            pin.clear_states()
            assert (await ctl.call("valve1", "on"))["status"] == "done"
            await wait_pin(pin, False)
            total = sum(before) + sum(on_intervals(pin))
            assert total <= 2.0 + TOL_S, f"on {total:.3f} s across the restart; max_on_s is 2, min_off_s 5"


async def test_a_dose_running_when_the_process_died_is_answered_failed(mosquitto: MosquittoProcess,
                                                                        tmp_path: Path) -> None:
    config = write_equipment_unit(tmp_path, "lim-k", mosquitto.port, {"pump1": SLOW_PUMP}, extra="")
    env = {"GPIOZERO_MOCK_PIN_CLASS": "mockpwmpin"}
    run = ["edge", "run", "--config", str(config), "--pin-factory", "mock"]
    proc = spawn(run, tmp_path / "unit.log", env)
    try:
        async with connected_client("127.0.0.1", mosquitto.port, "lim-k") as ctl, \
                probe("127.0.0.1", mosquitto.port, pattern="lab/lim-k/#") as found:
            await wait_ready(found, "lim-k", proc.pid)
            boots = ready_boots(found, "lim-k")
            await ctl.acquire()
            dose_id = await ctl.send("pump1", "dose", {"ml": 8})
            await found.wait_for(lambda: (s := found.module_state("lim-k", "pump1")) and s["outputs"]["on"],
                                 10, "pump on")
            # Killed once the running reply and the pump's on-segment are on disk (one writer batch).
            state_file = tmp_path / "data" / "durable.sqlite3"
            await wait_durable(state_file, lambda db: reply_on_disk(db, dose_id) == "running")
            await wait_durable(state_file, lambda db: bool(
                db.execute("SELECT 1 FROM segments WHERE module = 'pump1'").fetchone()))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = spawn(run, tmp_path / "unit.log", env)
            failed = await wait_final(ctl, dose_id, timeout=20)
            assert failed["status"] == "failed", failed
            assert failed["error"]["message"].startswith("unit restarted"), failed
            await wait_ready(found, "lim-k", proc.pid, boots)
            seen = len(found.messages)
            await ctl.acquire()
            ctl.replies.pop(dose_id)
            again = await ctl.call("pump1", "dose", {"ml": 8}, command_id=dose_id)
            assert again["status"] == "failed" and again["error"] == failed["error"]
            statuses = [r["status"] for r in ctl.replies[dose_id]]
            assert statuses == ["failed"], "answered again, not executed twice"
            states = [m.payload for m in found.messages[seen:] if m.topic == "lab/lim-k/pump1/state"]
            assert not any(s["outputs"]["on"] for s in states)
            status = await ctl.call("pump1", "STATUS")
            assert status["result"]["outputs"]["on"] is False
            # What the killed dose may have pumped (on until the restart, at most) still counts:
            # the whole hour's 10 ml no longer fit.
            refused = await ctl.call("pump1", "dose", {"ml": 10})
            assert refused["status"] == "rejected" and "would make" in refused["error"]["message"], refused
    finally:
        stop(proc)


async def wait_durable(path: Path, holds: Callable[[sqlite3.Connection], bool], timeout: float = 5.0) -> None:
    """Wait until the unit's durable state file satisfies `holds` (written within one writer batch)."""
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.closing(sqlite3.connect(path)) as db:
                if holds(db):
                    return
            await asyncio.sleep(0.01)


def reply_on_disk(db: sqlite3.Connection, command_id: str) -> str | None:
    row = db.execute("SELECT payload FROM replies WHERE id = ?", (command_id,)).fetchone()
    return None if row is None else str(json.loads(row[0])["status"])


def ready_boots(found: Probe, unit: str) -> set[str]:
    return {m.payload["boot"] for m in found.messages if m.topic == f"lab/{unit}/$state"
            and m.payload["state"] == "ready"}


async def wait_ready(found: Probe, unit: str, pid: int, before: set[str] | None = None) -> None:
    """Wait for `ready` from a boot not in `before` (default: any boot)."""
    await found.wait_for(lambda: ready_boots(found, unit) - (before or set()), 20,
                         f"unit {unit} (pid {pid}) ready")


def status_burst_then_estop(port: int, unit: str, count: int) -> float:
    """From a client of its own (a thread, so the unit's loop cannot hold it up): `count` STATUS
    commands, then an ESTOP; returns the monotonic time the ESTOP was handed to the socket."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"burst-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for n in range(count):
            client.publish(f"lab/{unit}/pump1/cmd", json.dumps({"id": f"status-{n}", "cmd": "STATUS"}), qos=1)
        info = client.publish(f"lab/{unit}/$cmd", json.dumps({"id": "estop", "cmd": "ESTOP"}), qos=1)
        info.wait_for_publish(5)
        return time.monotonic()
    finally:
        client.loop_stop()
        client.disconnect()


async def test_estop_never_waits_for_the_durable_writes(mosquitto: MosquittoProcess, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    slow_commit = DurableState._commit

    def stalling(self: DurableState, db: sqlite3.Connection, writes: list[Any]) -> None:
        time.sleep(0.2)  # an SD card stalling on every fsync
        slow_commit(self, db, writes)

    monkeypatch.setattr(DurableState, "_commit", stalling)
    async with running_unit(tmp_path, "lim-e", mosquitto.port, {"pump1": SLOW_PUMP}) as rig, \
            connected_client("127.0.0.1", mosquitto.port, "lim-e") as ctl:
        await ctl.acquire()
        pin = rig.pin(PUMP_PIN)
        dose_id = await ctl.send("pump1", "dose", {"ml": 5})
        await wait_pin(pin, True)
        # Every reply is kept on disk: 20 replies queue behind stalled commits just before the ESTOP.
        sent = await asyncio.to_thread(status_burst_then_estop, mosquitto.port, "lim-e", 20)
        await wait_pin(pin, False)
        assert pin._last_change - sent < 0.05, "ESTOP acted without waiting for a commit"
        assert (await wait_final(ctl, dose_id))["status"] == "failed"


async def test_a_failing_disk_is_an_alarm_and_the_limits_hold(mosquitto: MosquittoProcess,
                                                              tmp_path: Path) -> None:
    async with running_unit(tmp_path, "lim-f", mosquitto.port, {"pump1": FAST_PUMP}) as rig, \
            probe("127.0.0.1", mosquitto.port, pattern="lab/lim-f/#") as found, \
            connected_client("127.0.0.1", mosquitto.port, "lim-f") as ctl:
        await ctl.acquire()
        assert (await ctl.call("pump1", "dose", {"ml": 95}))["status"] == "done"

        def disk_error(db: sqlite3.Connection) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        rig.unit.durable._queue.put(disk_error)  # the next commit fails as a dying SD card would
        alarm = await found.wait_for(
            lambda: [e for e in found.on("lab/lim-f/pump1/event") if e["code"] == "durable_write_failed"], 5,
            "a durable_write_failed alarm")
        assert alarm[0]["level"] == "alarm" and "disk I/O error" in alarm[0]["message"]
        await asyncio.sleep(1.05)
        refused = await ctl.call("pump1", "dose", {"ml": 10})
        assert refused["status"] == "rejected", "the hour's volume still counts"


# ---- item 10: one retained state per change, PAUSE/RESUME consistent --------------------------------
async def states_until_reply(found: Probe, unit: str, module: str, mark: int, reply_id: str
                             ) -> list[dict[str, Any]]:
    """Module states the probe saw from message `mark` up to the final reply `reply_id`."""
    reply_topic, state_topic = f"lab/{unit}/{module}/reply", f"lab/{unit}/{module}/state"

    def end() -> int | None:
        return next((i for i, m in enumerate(found.messages) if m.topic == reply_topic
                     and m.payload["id"] == reply_id and m.payload["status"] in ("done", "failed")), None)

    await found.wait_for(lambda: end() is not None, 5, f"reply {reply_id}")
    return [m.payload for m in found.messages[mark:end()] if m.topic == state_topic]


async def test_one_state_per_instant_switch_and_consistent_pause_resume(mosquitto: MosquittoProcess,
                                                                       tmp_path: Path) -> None:
    async with running_unit(tmp_path, "lim-o", mosquitto.port, {"valve1": VALVE}), \
            probe("127.0.0.1", mosquitto.port, pattern="lab/lim-o/#") as found, \
            connected_client("127.0.0.1", mosquitto.port, "lim-o") as ctl:
        await ctl.acquire()
        await found.wait_for(lambda: found.module_state("lim-o", "valve1"), 5, "the retained state")
        for cmd in ("on", "off"):
            mark = len(found.messages)
            await ctl.call("valve1", cmd)
            barrier = await ctl.call("valve1", "STATUS")  # what was published before it has arrived by then
            states = await states_until_reply(found, "lim-o", "valve1", mark, barrier["id"])
            assert [s["outputs"]["on"] for s in states] == [cmd == "on"], f"one retained state per {cmd}"
        pulse_id = await ctl.send("valve1", "pulse", {"seconds": 5})
        await found.wait_for(lambda: (s := found.module_state("lim-o", "valve1")) and s["outputs"]["on"], 5,
                             "valve on")
        for cmd, lecis, on in (("PAUSE", "PAUSED", False), ("RESUME", "BUSY", True)):
            mark = len(found.messages)
            reply = await ctl.call("valve1", cmd)
            states = await states_until_reply(found, "lim-o", "valve1", mark, reply["id"])
            assert [(s["lecis"], s["outputs"]["on"]) for s in states] == [(lecis, on)], cmd
        assert (await ctl.call("valve1", "ABORT"))["status"] == "done"
        assert (await wait_final(ctl, pulse_id))["status"] == "failed"
