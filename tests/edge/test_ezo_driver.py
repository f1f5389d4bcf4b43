"""The EZO driver against the EZO simulator on a pseudo-terminal: what a bench user would see."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from edge.driver import DriverResources
from edge.drivers.ezo import EzoDriver
from lecis.dcd import CommandSpec, Dcd, ParamSpec, ReadingSpec
from lecis.errors import CommandFailed, DeviceError, DeviceLost
from sim.ezo_device import EzoSimulator
from sim.faults import FaultPlan
from tests.edge.fake_host import FakeHost, running

READINGS = {
    "ph": (ReadingSpec("ph", "pH", 0.0, 14.0),),
    "do": (ReadingSpec("do_mg", "mg/L", 0.0, 100.0), ReadingSpec("do_sat", "%", 0.0, 500.0)),
    "rtd": (ReadingSpec("temp", "°C", -50.0, 150.0),),
}
COMMANDS = (
    CommandSpec("calibrate_mid", (ParamSpec("point", minimum=0, maximum=14),), wire="Cal,mid,{point:.2f}"),
    CommandSpec("calibrate_low", (ParamSpec("point", minimum=0, maximum=14),), wire="Cal,low,{point:.2f}"),
    CommandSpec("calibration", wire="Cal,?", expect=r"^\?Cal,[0-3]$"),
    CommandSpec("slope", wire="Slope,?", expect=r"^\?Slope,"),
    CommandSpec("status", wire="Status", expect=r"^\?Nope"),
    CommandSpec("factory_reset", wire="Factory", expect=r"^\*RS$"),
)


class Water:
    """Fixed probe values the test sets, instead of the drifting water model."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, float]] = {
            "ph": {"ph": 7.012}, "do": {"percent": 95.0}, "rtd": {"temp_c": 21.5},
        }

    def sample(self, probe: str) -> dict[str, float]:
        return dict(self.values[probe])


def dcd(probe: str, port: str, readings: tuple[ReadingSpec, ...] | None = None, **settings: Any) -> Dcd:
    base: dict[str, Any] = {"probe": probe, "port": port, "baudrate": 9600, "period_s": 0.1,
                            "timeout_s": 1.5, "temperature_source": None}
    if probe == "do":
        base["do_outputs"] = ["mg", "%"]
    base.update(settings)
    return Dcd(module=f"{probe}1", driver="ezo", source="test", kind="instrument",
               readings=READINGS[probe] if readings is None else readings, commands=COMMANDS,
               settings=base)


@contextlib.asynccontextmanager
async def simulator(tmp_path: Path, probe: str, **kwargs: Any) -> AsyncIterator[EzoSimulator]:
    kwargs.setdefault("model", Water())
    async with EzoSimulator(probe, tmp_path / f"{probe}-port", **kwargs) as sim:
        yield sim




Answer = list[tuple[float, str]]


def script(sim: EzoSimulator, command: str, *answers: Answer | Callable[[], Answer]) -> None:
    """The next `command`s get `answers` (lists of (delay, line), or makers of them); then as usual."""
    real: Callable[[str], Answer] = sim.circuit.handle
    queue = list(answers)

    def handle(line: str) -> Answer:
        if line.strip().upper() == command.upper() and queue:
            answer = queue.pop(0)
            return answer() if callable(answer) else answer
        return real(line)

    sim.circuit.handle = handle  # type: ignore[method-assign]


def water(sim: EzoSimulator) -> Water:
    assert isinstance(sim.model, Water)
    return sim.model


# ---- readings -----------------------------------------------------------------------------------


async def test_ph_readings_arrive_after_continuous_mode_is_turned_off(tmp_path: Path) -> None:
    async with simulator(tmp_path, "ph") as sim:
        host = FakeHost()
        async with running(EzoDriver(dcd("ph", sim.port), host, DriverResources())):
            got = await host.wait_readings(2)
        assert [r.values for r in got] == [{"ph": 7.012}, {"ph": 7.012}]
        assert sim.circuit.settings.continuous_s == 0
        assert sim.circuit.settings.codes
        assert host.events == []


async def test_rtd_readings_come_every_period(tmp_path: Path) -> None:
    async with simulator(tmp_path, "rtd") as sim:
        host = FakeHost()
        async with running(EzoDriver(dcd("rtd", sim.port, period_s=0.2), host, DriverResources())):
            got = await host.wait_readings(3)
        assert {r.values["temp"] for r in got} == {21.5}
        gaps = [(b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(got)]
        # A reading takes the circuit 0.6 s, so a 0.2 s period is paced by the circuit, never bunched.
        assert all(0.55 < gap < 1.2 for gap in gaps), gaps
        assert "S,c" in sim.commands_seen


async def test_do_with_both_outputs(tmp_path: Path) -> None:
    async with simulator(tmp_path, "do") as sim:
        host = FakeHost()
        async with running(EzoDriver(dcd("do", sim.port), host, DriverResources())):
            (first,) = await host.wait_readings(1)
        assert set(first.values) == {"do_mg", "do_sat"}
        assert first.values["do_sat"] == 95.0
        assert 5.0 < first.values["do_mg"] < 12.0


async def test_do_with_only_saturation_turns_mg_off(tmp_path: Path) -> None:
    readings = (ReadingSpec("do_sat", "%", 0.0, 500.0),)
    async with simulator(tmp_path, "do") as sim:
        host = FakeHost()
        driver = EzoDriver(dcd("do", sim.port, readings, do_outputs=["%"]), host, DriverResources())
        async with running(driver):
            (first,) = await host.wait_readings(1)
        assert first.values == {"do_sat": 95.0}
        assert (sim.circuit.settings.out_mg, sim.circuit.settings.out_percent) == (False, True)


async def test_temperature_compensation_follows_the_source(tmp_path: Path) -> None:
    async with simulator(tmp_path, "do") as sim:
        sim.circuit.read_delay = 0.1
        host = FakeHost()
        host.feed("temp1", temp=21.34)
        driver = EzoDriver(dcd("do", sim.port, temperature_source="temp1"), host, DriverResources())
        async with running(driver):
            await host.wait_readings(1)
            assert sim.circuit.settings.comp_t == 21.3
            first_r = sim.commands_seen.index("R")
            assert sim.commands_seen[first_r - 1] == "T,21.3"
            host.feed("temp1", temp=21.38)  # less than 0.1 °C from what was sent: nothing to send
            await host.wait_readings(2)
            host.feed("temp1", temp=24.0)
            await host.wait_readings(2)
        sent = [c for c in sim.commands_seen if c.startswith("T,")]
        assert sent == ["T,21.3", "T,24.0"]
        assert sim.circuit.settings.comp_t == 24.0


# ---- what must never become a reading -------------------------------------------------------


async def test_er_garbage_and_out_of_range_give_events_and_no_reading(tmp_path: Path) -> None:
    readings = (ReadingSpec("ph", "pH", 2.0, 12.0),)
    async with simulator(tmp_path, "ph") as sim:
        sim.circuit.read_delay = 0.05
        host = FakeHost()
        driver = EzoDriver(dcd("ph", sim.port, readings), host, DriverResources())
        script(sim, "R", [(0.05, "*ER")], [(0.05, "\x05\x7f7.0\x13"), (0.0, "*OK")],
               [(0.05, "13.500"), (0.0, "*OK")], [(0.05, "7.1"), (0.0, "\x02*OK")])
        async with running(driver) as task:
            (good,) = await host.wait_readings(1)
            assert not task.done()
        assert good.values == {"ph": 7.012}
        assert host.codes() == ["device_error", "bad_data", "out_of_range", "bad_data"]
        messages = [message for _, _, message in host.events]
        assert "*ER" in messages[0] and "'R'" in messages[0]
        assert r"'\x05\x7f7.0\x13'" in messages[1]
        assert "13.5" in messages[2]
        assert {level for level, _, _ in host.events} == {"warning"}


async def test_rtd_without_probe_reports_once_and_resumes(tmp_path: Path) -> None:
    async with simulator(tmp_path, "rtd") as sim:
        sim.circuit.read_delay = 0.1
        host = FakeHost()
        async with running(EzoDriver(dcd("rtd", sim.port), host, DriverResources())):
            await host.wait_readings(1)
            sim.detach_probe()
            await host.wait_event("no_probe")
            before = len(host.readings)
            seen = len(sim.commands_seen)
            await host.wait_for(lambda: sim.commands_seen[seen:].count("R") >= 2, what="two more R")
            assert len(host.readings) == before
            sim.attach_probe()
            (back,) = await host.wait_readings(1)
        assert back.values == {"temp": 21.5}
        # The episode's first event, then at the good reading how many repeats were not sent.
        assert host.codes() == ["no_probe", "no_probe"]
        assert "-1023.000" in host.events[0][2]
        assert "more no_probe warnings" in host.events[1][2] and "a good reading came" in host.events[1][2]
        assert all(r.values["temp"] != -1023.0 for r in host.readings)


async def test_faulty_line_never_publishes_garbage(tmp_path: Path) -> None:
    plan = FaultPlan(frozenset({"garbage", "partial"}), rate=0.25, seed=3, partial_late_s=0.2)
    async with simulator(tmp_path, "rtd", faults=plan) as sim:
        sim.circuit.read_delay = 0.05
        host = FakeHost()
        async with running(EzoDriver(dcd("rtd", sim.port, timeout_s=0.5), host, DriverResources())) as task:
            await host.wait_readings(8)
            await host.wait_for(lambda: len(host.events) >= 3, what="three fault events")
            assert not task.done()
        assert {r.values["temp"] for r in host.readings} == {21.5}
        assert set(host.codes()) <= {"bad_data", "timeout"}
        assert sim.faults_injected


async def test_three_silent_readings_in_a_row_end_run_with_no_response(tmp_path: Path) -> None:
    async with simulator(tmp_path, "rtd") as sim:
        host = FakeHost()
        driver = EzoDriver(dcd("rtd", sim.port, timeout_s=0.3), host, DriverResources())
        await driver.initialize()
        script(sim, "R", [], [], [])
        with pytest.raises(DeviceError) as caught:
            await asyncio.wait_for(driver.run(), 5)
        await driver.close()
        assert caught.value.code == "no_response"
        assert host.codes() == ["timeout", "timeout"]
        assert "'R'" in host.events[0][2]


async def test_reboot_is_noticed_and_the_circuit_set_up_again(tmp_path: Path) -> None:
    async with simulator(tmp_path, "ph") as sim:
        sim.circuit.read_delay = 0.05
        host = FakeHost()
        host.feed("temp1", temp=19.0)
        driver = EzoDriver(dcd("ph", sim.port, temperature_source="temp1"), host, DriverResources())

        def reboot() -> Answer:
            sim.circuit.settings.continuous_s = 1  # as it powers up: reading every second again
            return sim.circuit.power_up()

        async with running(driver):
            await host.wait_readings(1)
            before = len(sim.commands_seen)
            script(sim, "R", reboot)
            event = await host.wait_event("device_restarted")
            got = await host.wait_readings(2)
        assert event[0] == "info"
        assert {r.values["ph"] for r in got} == {7.012}
        assert sim.circuit.settings.continuous_s == 0
        assert sim.circuit.settings.comp_t == 19.0  # compensation sent again after the reboot
        again = sim.commands_seen[before:]
        assert again.index("C,0") < again.index("i") < again.index("T,19.0")


# ---- the port ---------------------------------------------------------------------------------


async def test_missing_port_is_device_lost_naming_it(tmp_path: Path) -> None:
    port = str(tmp_path / "nothing-here")
    driver = EzoDriver(dcd("ph", port), FakeHost(), DriverResources())
    with pytest.raises(DeviceLost, match="nothing-here"):
        await driver.initialize()


async def test_wrong_circuit_on_the_port(tmp_path: Path) -> None:
    async with simulator(tmp_path, "do") as sim:
        driver = EzoDriver(dcd("ph", sim.port), FakeHost(), DriverResources())
        with pytest.raises(DeviceError) as caught:
            await driver.initialize()
        assert caught.value.code == "wrong_device"
        assert str(caught.value) == f"port {sim.port} answers as a D.O. circuit but the DCD says probe ph"


async def test_response_codes_left_off_are_turned_back_on(tmp_path: Path) -> None:
    async with simulator(tmp_path, "rtd") as sim:
        sim.circuit.settings.codes = False
        host = FakeHost()
        async with running(EzoDriver(dcd("rtd", sim.port, timeout_s=0.4), host, DriverResources())):
            await host.wait_readings(1)
        assert sim.circuit.settings.codes


async def test_unplug_ends_run_with_device_lost_and_replug_reads_again(tmp_path: Path) -> None:
    async with simulator(tmp_path, "rtd") as sim:
        host = FakeHost()
        driver = EzoDriver(dcd("rtd", sim.port), host, DriverResources())
        await driver.initialize()
        task = asyncio.create_task(driver.run())
        await host.wait_readings(1)
        await sim.disconnect()
        with pytest.raises(DeviceLost, match=sim.port):
            await asyncio.wait_for(task, 5)
        await driver.close()
        with pytest.raises(DeviceLost, match=sim.port):  # the unit's retry while it is still out
            await driver.initialize()
        await sim.reconnect()
        async with running(driver):  # the same driver object, opened afresh
            got = await host.wait_readings(2)
        assert {r.values["temp"] for r in got} == {21.5}


# ---- device commands --------------------------------------------------------------------------


async def test_command_is_rendered_sent_and_answered(tmp_path: Path) -> None:
    async with simulator(tmp_path, "ph") as sim:
        sim.circuit.read_delay = 0.2
        host = FakeHost()
        driver = EzoDriver(dcd("ph", sim.port), host, DriverResources())
        spec = driver.dcd.command("calibrate_mid")
        assert spec is not None
        async with running(driver):
            await host.wait_readings(1)
            result = await driver.execute("calibrate_mid", spec.validate({"point": 7}), run=None)  # type: ignore[arg-type]
            answered = await driver.execute("calibration", {}, run=None)  # type: ignore[arg-type]
            await host.wait_readings(1)
        assert result == {"answer": []}
        assert answered == {"answer": ["?Cal,1"]}
        assert "Cal,mid,7.00" in sim.commands_seen
        assert sim.circuit.settings.cal_points == {"mid"}
        assert host.events == []


async def test_commands_and_readings_never_interleave(tmp_path: Path) -> None:
    async with simulator(tmp_path, "ph") as sim:
        sim.circuit.read_delay = 0.1
        host = FakeHost()
        driver = EzoDriver(dcd("ph", sim.port, period_s=0.05), host, DriverResources())
        async with running(driver):
            results = [await driver.execute("slope", {}, run=None) for _ in range(5)]  # type: ignore[arg-type]
            await host.wait_readings(2)
        assert all(r["answer"][0].startswith("?Slope,") and len(r["answer"]) == 1 for r in results)
        assert host.events == []
        assert {r.values["ph"] for r in host.readings} == {7.012}


async def test_a_command_meant_to_restart_the_circuit_succeeds_and_readings_go_on(tmp_path: Path) -> None:
    async with simulator(tmp_path, "rtd") as sim:
        sim.circuit.read_delay = 0.1
        host = FakeHost()
        driver = EzoDriver(dcd("rtd", sim.port), host, DriverResources())
        async with running(driver):
            await host.wait_readings(1)
            result = await driver.execute("factory_reset", {}, run=None)  # type: ignore[arg-type]
            await host.wait_readings(2)
        assert result == {"answer": ["*RS"]}
        assert sim.circuit.settings.continuous_s == 0
        assert "device_restarted" in host.codes()


async def test_an_unexpected_restart_fails_the_command_and_sets_the_circuit_up_again(tmp_path: Path) -> None:
    async with simulator(tmp_path, "ph") as sim:
        driver = EzoDriver(dcd("ph", sim.port), FakeHost(), DriverResources())
        await driver.initialize()
        script(sim, "Cal,mid,7.00", [(0.0, "*RE")])
        try:
            with pytest.raises(CommandFailed, match=r"restarted \(\*RE\) while running 'Cal,mid,7.00'"):
                await driver.execute("calibrate_mid", {"point": 7.0}, run=None)  # type: ignore[arg-type]
            after = sim.commands_seen[sim.commands_seen.index("Cal,mid,7.00"):]
            assert after[1:4] == ["C,0", "*OK,1", "i"]
        finally:
            await driver.close()


async def test_refused_command_is_command_failed(tmp_path: Path) -> None:
    async with simulator(tmp_path, "ph") as sim:
        driver = EzoDriver(dcd("ph", sim.port), FakeHost(), DriverResources())
        async with running(driver):
            with pytest.raises(CommandFailed) as caught:
                await driver.execute("calibrate_low", {"point": 4.0}, run=None)  # type: ignore[arg-type]
            assert caught.value.message == "the circuit answered *ER to 'Cal,low,4.00'"
            with pytest.raises(CommandFailed, match="Nope"):  # an answer not matching `expect`
                await driver.execute("status", {}, run=None)  # type: ignore[arg-type]


async def test_unanswered_command_is_command_failed(tmp_path: Path) -> None:
    async with simulator(tmp_path, "rtd") as sim:
        driver = EzoDriver(dcd("rtd", sim.port, timeout_s=0.3), FakeHost(), DriverResources())
        await driver.initialize()
        script(sim, "Slope,?", [])
        try:
            with pytest.raises(CommandFailed, match=r"did not answer 'Slope,\?' within 0.3 s"):
                await driver.execute("slope", {}, run=None)  # type: ignore[arg-type]
        finally:
            await driver.close()


def test_instruments_have_no_outputs() -> None:
    driver = EzoDriver(dcd("ph", "/dev/null"), FakeHost(), DriverResources())
    driver.safe()
    assert driver.outputs() == {}
