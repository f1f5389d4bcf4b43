"""Time-proportioning PID: a period's pulse never goes out while the loop's previous one is in flight.

The unit refuses a device command while a pulse runs (BUSY, rejected kind
`state`); with limits [0, 1] a saturated loop's pulse lasts the whole period,
so its answer comes back after the next period has begun. That pulse waits
for the answer and is shortened by the wait: it ends when it would have.
"""

from __future__ import annotations

from hub.controller.effects import CommandEffect, Effect, Outcome
from hub.controller.engine import Engine
from tests.hub.controller.plant_rig import PlantRig
from tests.hub.controller.scripts import T0, commands, pid, reading, script


def pulses(effects: list[Effect]) -> list[CommandEffect]:
    return [e for e in effects if isinstance(e, CommandEffect) and e.cmd == "pulse"]


def test_a_pulse_waits_for_the_previous_ones_answer_and_is_shortened_by_the_wait() -> None:
    lp = pid("heat", "u1/t1.temp", "u1/heater", "25", kp=1.0, ki=0.0, out_min=0, out_max=1, period_s=10)
    e = Engine(script(loops=(lp,)), run_id="r1", started_at=T0)  # type: ignore[arg-type]
    e.start(T0)

    def read_until(t0: int, t1: int) -> list[Effect]:
        out: list[Effect] = []
        for t in range(t0, t1 + 1):  # 20 °C, 5 K below: saturated, duty 1
            out += e.advance(T0 + t) + e.on_reading(reading("u1/t1.temp", 20.0, T0 + t), T0 + t)
        return out

    first = pulses(read_until(1, 10))
    assert commands(first) == [("u1/heater", "pulse", {"seconds": 10.0})]  # 10 s: the whole period
    assert pulses(read_until(11, 20)) == []  # the period from 20 s begins with the first one unanswered
    second = pulses(e.on_outcome(first[0].effect_id, Outcome("done"), T0 + 20.4))
    assert commands(second) == [("u1/heater", "pulse", {"seconds": 9.6})]  # still ends at 30 s
    assert pulses(read_until(21, 30)) == []
    third = pulses(e.on_outcome(second[0].effect_id, Outcome("done"), T0 + 30.2))
    assert commands(third) == [("u1/heater", "pulse", {"seconds": 9.8})]
    # an answer later than a whole period: that period's pulse is dropped, the next one waits
    assert pulses(read_until(31, 41)) == []
    late = pulses(e.on_outcome(third[0].effect_id, Outcome("timeout"), T0 + 41.5))
    assert commands(late) == [("u1/heater", "pulse", {"seconds": 8.5})]


def test_a_saturated_loop_on_a_unit_with_uneven_latency_is_never_refused() -> None:
    # Commands take 0.5 s or 0.1 s to reach the unit, answers 0.2 s to come back: a full-period pulse
    # that started late is still running when the next one would arrive.
    rig = PlantRig("duration: 600s\nloops:\n  temp: {pid: bench-1/heater, input: bench-1/temp1.temp, "
                   "setpoint: 40, kp: 1, ki: 0, limits: [0, 1], period: 30s}\n",
                   latency=lambda n: (0.5 if n % 2 else 0.1, 0.2))
    rig.start()
    rig.until(700)
    assert rig.engine.state == "finished"
    assert rig.refused() == []
    assert [a for a in rig.answers if a[2] == "pulse" and a[3] != "done" and a[0] < 600] == []
    assert not [e for _, e in rig.logs if e.code == "command_failed"]
    on = [t for t, m, c, s, _ in rig.answers if m == "heater" and c == "pulse"]
    assert len(on) >= 18  # one per period from 30 s to the end, none lost


def test_after_a_restart_a_pulse_sent_before_it_is_taken_as_running_until_its_planned_end() -> None:
    lp = pid("heat", "u1/t1.temp", "u1/heater", "25", kp=1.0, ki=0.0, out_min=0, out_max=1, period_s=10)
    s = script(loops=(lp,))
    e = Engine(s, run_id="r1", started_at=T0)  # type: ignore[arg-type]
    e.start(T0)
    sent: list[Effect] = []
    for t in range(1, 16):
        sent += e.advance(T0 + t) + e.on_reading(reading("u1/t1.temp", 20.0, T0 + t), T0 + t)
    assert commands(pulses(sent)) == [("u1/heater", "pulse", {"seconds": 10.0})]  # 10 s to 20 s
    # the hub dies at 15 s: the answer to that pulse goes with it
    again = Engine(s, run_id="r1", started_at=T0, snapshot=e.snapshot())  # type: ignore[arg-type]
    after: list[tuple[float, list[CommandEffect]]] = [(15.0, pulses(again.resume(T0 + 15)))]
    now = 15.0
    while (due := again.next_due()) is not None and due <= T0 + 25:
        now = max(now, due - T0)
        after.append((now, pulses(again.advance(T0 + now) + again.on_reading(
            reading("u1/t1.temp", 20.0, T0 + now), T0 + now))))
    sent_at = [(t, commands(p)) for t, p in after if p]
    # not at 20 s (the unit may still be BUSY), but 1 s after its planned end, ending at 30 s as planned
    assert sent_at == [(21.0, [("u1/heater", "pulse", {"seconds": 9.0})])]
