"""A pump on the board, in a real unit process, commanded over Mosquitto exactly like a GPIO pump.

The board is the real firmware in simavr; the unit reaches it through a symlink, so the board can
be unplugged (the rig stopped) and plugged back (a new rig behind the same name).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from hub.unit_client import connected_client
from provisioning.broker import MosquittoProcess
from tests.firmware_bridge.simrig import SimRig, require_rig, start_rig
from tests.rig import probe
from tests.system.inproc import write_equipment_unit
from tests.system.processes import spawn, stop

pytestmark = pytest.mark.system

PUMP = """module: bpump
driver: bridge
port: {port}
channel: D2
max_on_s: 2
watchdog_s: 0.5
ml_per_s: 1.0
on_controller_loss: "off"
"""
VALVE = """module: bvalve
driver: bridge
port: {port}
channel: D4
max_on_s: 100
on_controller_loss: hold
"""
WRONG = """module: bwrong
driver: bridge
port: {port}
channel: D9
max_on_s: 10
"""
PROBE = """module: probe1
driver: bridge.ain
port: {port}
channel: A0
period_s: 0.2
"""


class Bench:
    """The emulated board behind `link`, which can be unplugged and plugged back."""

    def __init__(self, tmp: Path, stack: ExitStack) -> None:
        self.tmp, self.stack = tmp, stack
        self.link = tmp / "ttyBOARD"
        self.rig: SimRig | None = None
        self._inner: ExitStack | None = None

    def plug(self) -> SimRig:
        self._inner = ExitStack()
        self.rig = self._inner.enter_context(start_rig(log=self.tmp / "simrig.log"))
        self.link.unlink(missing_ok=True)
        self.link.symlink_to(self.rig.pty)
        return self.rig

    def unplug(self) -> None:
        self.link.unlink(missing_ok=True)
        if self._inner is not None:
            self._inner.close()
        self.rig = None


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    require_rig()
    with ExitStack() as stack:
        b = Bench(tmp_path, stack)
        b.plug()
        try:
            yield b
        finally:
            b.unplug()


def unit_with(tmp: Path, name: str, port: int, bench: Bench) -> Path:
    dcds = {m: t.format(port=bench.link) for m, t in
            (("bpump", PUMP), ("bvalve", VALVE), ("bwrong", WRONG), ("probe1", PROBE))}
    return write_equipment_unit(tmp, name, port, dcds, extra="")


async def sim_until(check: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"{what} not within {timeout:g} s") from None


async def test_board_pump_under_lease_estop_and_max_on(mosquitto: MosquittoProcess, tmp_path: Path,
                                                       bench: Bench) -> None:
    config = unit_with(tmp_path, "br-sys", mosquitto.port, bench)
    proc = spawn(["edge", "run", "--config", str(config), "--pin-factory", "mock"], tmp_path / "unit.log")
    rig = bench.rig
    assert rig is not None
    try:
        async with probe("127.0.0.1", mosquitto.port) as found, \
                connected_client("127.0.0.1", mosquitto.port, "br-sys", holder="tsc-1") as ctl:
            for module in ("bpump", "bvalve", "bwrong", "probe1"):
                await found.wait_for(lambda m=module: (s := found.module_state("br-sys", m))  # type: ignore
                                     and s["lecis"] == "IDLE", 20, f"{module} IDLE")
            # lease: without a token nothing moves
            no_token = await ctl.call("bpump", "on", lease=None)
            assert no_token["status"] == "rejected" and no_token["error"]["kind"] == "denied"
            assert rig.pin("D2").level == 0
            assert (await ctl.acquire(ttl_s=30))["status"] == "done"
            assert (await ctl.call("bpump", "on"))["status"] == "done"
            assert rig.pin("D2").level == 1
            # an unknown channel on this board: rejected, and the module stays IDLE
            wrong = await ctl.call("bwrong", "on")
            assert wrong["status"] == "rejected" and wrong["error"]["kind"] == "validation"
            assert "bad_channel" in wrong["error"]["message"]
            # ESTOP: off at once, latched; CLEAR restarts nothing
            assert (await ctl.call("bvalve", "on"))["status"] == "done"
            assert rig.pin("D4").level == 1
            await ctl.call(None, "ESTOP", lease=None)
            await sim_until(lambda: rig.pin("D2").level == 0 and rig.pin("D4").level == 0, 2, "ESTOP")
            refused = await ctl.call("bpump", "on")
            assert refused["status"] == "rejected" and refused["error"]["kind"] == "state"
            assert (await ctl.call(None, "CLEAR"))["status"] == "done"
            await found.wait_for(lambda: (s := found.module_state("br-sys", "bpump"))
                                 and s["lecis"] == "IDLE", 5, "IDLE after CLEAR")
            await asyncio.sleep(0.7)  # longer than the firmware watchdog: nothing came back
            assert rig.pin("D2").level == 0 and rig.pin("D4").level == 0
            # max_on_s: a 10 s run ends after 2 s, on the emulated pin (simulated time)
            await asyncio.sleep(1.1)  # min_off_s: a fresh stretch
            run_id = await ctl.send("bpump", "run", {"seconds": 10})
            await sim_until(lambda: rig.pin("D2").level == 1, 5, "pump running")
            rose = rig.pin("D2").changed_at_us
            run = await found.wait_for(
                lambda: (r := ctl.replies.get(run_id)) and r[-1]["status"] in ("done", "failed") and r[-1],
                15, "the run's final reply")
            assert run["status"] == "done" and run["result"]["limited_by"] == "max_on_s", run
            fell = rig.pin("D2")
            assert fell.level == 0
            assert (fell.changed_at_us - rose) / 1e6 == pytest.approx(2.0, abs=0.1), "on for max_on_s"
            # the analog probe reads the emulated pin
            rig.adc("A0", 3300)
            reading = await found.wait_for(
                lambda: next((r for m in reversed(found.on("lab/br-sys/probe1/data")) for r in m["readings"]
                              if r["values"]["raw"] > 600), None), 5, "a reading of 3.3 V")
            assert reading["values"]["volts"] == pytest.approx(3.3, abs=0.02)
            # the lease ends: the pump goes off (on_controller_loss: off), the valve is held
            await asyncio.sleep(1.1)  # min_off_s after the run's max_on_s cut
            assert (await ctl.call("bpump", "on"))["status"] == "done"
            assert (await ctl.call("bvalve", "on"))["status"] == "done"
            assert (await ctl.call(None, "lease.release"))["status"] == "done"
            await sim_until(lambda: rig.pin("D2").level == 0, 3, "pump off after the lease ended")
            await asyncio.sleep(0.7)  # the held valve is still refreshed past the firmware watchdog
            assert rig.pin("D4").level == 1
        assert stop(proc, signal.SIGTERM) == 0
        assert rig.pin("D2").level == 0 and rig.pin("D4").level == 0, "every output off on exit"
    finally:
        stop(proc)


async def test_board_unplugged_module_error_then_idle_when_it_returns(
        mosquitto: MosquittoProcess, tmp_path: Path, bench: Bench) -> None:
    config = unit_with(tmp_path, "br-plug", mosquitto.port, bench)
    proc = spawn(["edge", "run", "--config", str(config), "--pin-factory", "mock"], tmp_path / "unit.log")
    try:
        async with probe("127.0.0.1", mosquitto.port) as found, \
                connected_client("127.0.0.1", mosquitto.port, "br-plug") as ctl:
            def state(module: str) -> dict | None:  # type: ignore[type-arg]
                return found.module_state("br-plug", module)

            await found.wait_for(lambda: (s := state("bpump")) and s["lecis"] == "IDLE", 20, "IDLE")
            await ctl.acquire(ttl_s=60)
            assert (await ctl.call("bpump", "on"))["status"] == "done"
            bench.unplug()
            error = await found.wait_for(lambda: (s := state("bpump")) and s["lecis"] == "ERROR" and s, 5,
                                         "ERROR once the board is gone")
            assert error["error"]["code"] == "device_lost" and "ttyBOARD" in error["error"]["message"]
            assert error["outputs"]["on"] is False
            assert (await found.wait_for(lambda: (s := state("probe1")) and s["lecis"] == "ERROR" and s, 5,
                                         "the probe in ERROR too"))
            rig = bench.plug()
            await found.wait_for(lambda: (s := state("bpump")) and s["lecis"] == "IDLE", 15,
                                 "IDLE when the board is back")
            assert rig.pin("D2").level == 0, "nothing restarts by itself"
            assert (await ctl.call("bpump", "on"))["status"] == "done"
            assert rig.pin("D2").level == 1
    finally:
        stop(proc)



async def test_unit_killed_the_board_stops_the_pump_on_its_own(mosquitto: MosquittoProcess, tmp_path: Path,
                                                              bench: Bench) -> None:
    config = write_equipment_unit(tmp_path, "br-kill", mosquitto.port, {
        "bpump": PUMP.format(port=bench.link).replace("max_on_s: 2", "max_on_s: 600")}, extra="")
    proc = spawn(["edge", "run", "--config", str(config), "--pin-factory", "mock"], tmp_path / "unit.log")
    rig = bench.rig
    assert rig is not None
    try:
        async with probe("127.0.0.1", mosquitto.port) as found, \
                connected_client("127.0.0.1", mosquitto.port, "br-kill") as ctl:
            await found.wait_for(lambda: (s := found.module_state("br-kill", "bpump"))
                                 and s["lecis"] == "IDLE", 20, "IDLE")
            assert (await ctl.acquire(ttl_s=300))["status"] == "done"
            on = await ctl.call("bpump", "on")
            assert on["status"] == "done", on
            # While the unit runs, nobody else opens the board's port.
            second = await asyncio.create_subprocess_exec(
                *spawn_args("bridge", str(bench.link), "set", "D2", "off"),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await second.communicate()
            assert second.returncode == 2 and b"in use by another program" in err, err
            await asyncio.to_thread(rig.wait_sim_us, 1_000_000)  # refreshed past watchdog_s
            assert rig.pin("D2").level == 1
            proc.kill()  # the Pi dies: no off, no last frame
            proc.wait()
            killed_us = rig.time_us()
            await asyncio.to_thread(rig.wait_sim_us, 700_000)
        pin = rig.pin("D2")
        assert pin.level == 0, "the firmware's watchdog turned the pump off"
        assert pin.changed_at_us - killed_us <= 500_000 * 1.1
    finally:
        stop(proc)


def spawn_args(*args: str) -> list[str]:
    from tests.system.processes import LABEDGE

    return [*LABEDGE, *args]
