"""Stopping brings every output to off whatever its state: a module busy with a pulse, run or dose is ABORTed.

Against hub.simulate's SimulatedPlant, which answers as the unit does: a
module running a timed command is BUSY and refuses `off` (rejected, kind
`state`); ABORT ends the command with the outputs off.
"""

from __future__ import annotations

from tests.hub.controller.plant_rig import PlantRig, parse

LONG_PULSE = "  - {name: warm, at: 0s, do: [{bench-1/heater: {pulse: {seconds: 300}}}]}\n"
PID = ("loops:\n  temp: {pid: bench-1/heater, input: bench-1/temp1.temp, setpoint: 25, kp: 1, ki: 0,"
       " limits: [0, 1], period: 200s}\n")


def heater_on_until(rig: PlantRig) -> float:
    """When the heater's output last went off (it must be off at the end)."""
    assert rig.heater and rig.heater[-1][1] is False
    return rig.heater[-1][0]


def test_duration_end_aborts_a_task_pulse_in_flight_without_an_alarm() -> None:
    rig = PlantRig("duration: 100s\ntasks:\n" + LONG_PULSE)
    rig.start()
    rig.until(400)
    assert rig.engine.state == "finished"
    assert heater_on_until(rig) == 100.0  # not 300: the pulse was cut at the end of the run
    assert rig.vessel.heater_w() == 0.0
    assert ("heater", "ABORT", "done") in [(m, c, s) for _, m, c, s, _ in rig.answers]
    assert rig.alarms() == []
    assert rig.refused() == []


def test_operator_stop_aborts_the_pid_pulse_in_flight() -> None:
    rig = PlantRig(PID)
    rig.start()
    rig.until(250)  # 20 °C, far below 25: the pulse of the period from 200 s is 200 s long
    assert rig.heater[-1] == (200.0, True)
    rig.drive(lambda now: rig.engine.stop(now, "operator"))
    rig.until(500)
    assert rig.engine.state == "stopped"
    assert heater_on_until(rig) == 250.0
    assert rig.alarms() == [] and rig.refused() == []


def test_on_error_stop_aborts_what_still_runs() -> None:
    # 200 ml at 0.85 ml/s is longer than the pump's max_on_s: the unit refuses it and the run stops.
    rig = PlantRig("on_error: stop\ntasks:\n" + LONG_PULSE
                   + "  - {name: dose, at: 30s, do: [{bench-1/base_pump: {dose: {ml: 200}}}]}\n")
    rig.start()
    rig.until(400)
    assert rig.engine.state == "stopped"
    assert heater_on_until(rig) == 30.0
    assert [a.split(":")[0] for a in rig.alarms()] == ["command_failed"]  # the dose, nothing else
    assert rig.refused() == []


def test_a_removed_loop_turns_its_busy_output_off() -> None:
    rig = PlantRig(PID)
    rig.start()
    rig.until(250)
    assert rig.heater[-1] == (200.0, True)
    rig.drive(lambda now: rig.engine.apply(parse("tasks: []\n"), now, "test")[0])
    rig.until(260)
    assert heater_on_until(rig) == 250.0
    assert rig.engine.state == "running"
    assert rig.refused() == [] and rig.alarms() == []


def test_an_off_refused_by_a_busy_module_the_engine_did_not_know_of_is_followed_by_abort() -> None:
    rig = PlantRig("duration: 100s\n")
    rig.start()
    rig.plant.submit("bench-1", "heater", "pulse", {"seconds": 300}, lambda o: None)  # someone else's
    rig.engine.touched.add(("bench-1", "heater"))  # ... on an output the script drives
    rig.until(400)
    assert heater_on_until(rig) == 100.0
    assert [(m, c, s) for _, m, c, s, _ in rig.answers] == [
        ("heater", "off", "rejected"), ("heater", "ABORT", "done")]
    assert rig.alarms() == []


def test_a_guards_off_aborts_the_pulse_in_flight_and_the_run_carries_on() -> None:
    rig = PlantRig(PID + "variables: {hot: false}\n"
                   "guards:\n  hot: {while: hot, hold: {bench-1/heater: off}}\n"
                   "tasks:\n  - {name: h, at: 250s, do: [{set: {hot: true}}]}\n")
    rig.start()
    rig.until(300)
    assert rig.engine.state == "held"
    assert heater_on_until(rig) == 250.0
    assert [a.split(":")[0] for a in rig.alarms()] == ["guard_hold"]
    assert rig.refused() == []
