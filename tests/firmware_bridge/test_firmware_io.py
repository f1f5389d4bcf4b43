"""The firmware in simavr: SET, PWM, STEP, READ, PERIOD and STATUS, seen on the emulated pins."""

from __future__ import annotations

import itertools

import pytest

from firmware_bridge.frames import Ain, Ok
from tests.firmware_bridge.simrig import BoardPort, SimRig, board_port_fixture, simrig_fixture  # noqa: F401

DIGITAL = ("D2", "D4", "D7", "D8")


class Seq:
    """Request numbers 1..255, as the host hands them out."""

    def __init__(self) -> None:
        self._n = itertools.cycle(range(1, 256))

    def __call__(self, body: str) -> str:
        return f"{next(self._n)} {body}"


def ok(port: BoardPort, seq: Seq, body: str) -> tuple[str, ...]:
    line = seq(body)
    answer = port.request(line)
    assert isinstance(answer, Ok), (line, answer)
    return answer.values


def test_set_drives_each_digital_output_and_no_other(simrig: SimRig, board_port: BoardPort) -> None:
    seq = Seq()
    assert simrig.pins() == {"D2": 0, "D3": 0, "D4": 0, "D5": 0, "D6": 0, "D7": 0, "D8": 0}
    for name in DIGITAL:
        ok(board_port, seq, f"SET {name} 1 60000")
        assert simrig.pin(name).level == 1
        assert {k for k, v in simrig.pins().items() if v} == {name}
        ok(board_port, seq, f"SET {name} 0 60000")
        assert simrig.pin(name).level == 0


def test_pwm_duty_on_d3(simrig: SimRig, board_port: BoardPort) -> None:
    seq = Seq()
    for duty in (128, 1, 254, 255, 0, 77):
        ok(board_port, seq, f"PWM D3 {duty} 60000")
        assert simrig.pwm("D3") == duty


def test_stepper_steps_at_the_commanded_rate_and_direction(simrig: SimRig, board_port: BoardPort) -> None:
    seq = Seq()
    for rate in (500, -1000, 2000, -1):
        ok(board_port, seq, f"STEP S1 {rate} 60000")
        simrig.wait_sim_us(2_100_000 // abs(rate) + 20_000)  # two steps at least
        steps = simrig.steps("S1")
        assert steps.direction == (1 if rate > 0 else 0)
        assert steps.interval_us == pytest.approx(1_000_000 / abs(rate), rel=0.01)
    ok(board_port, seq, "STEP S1 0 60000")
    stopped = simrig.steps("S1").count
    simrig.wait_sim_us(50_000)
    assert simrig.steps("S1").count == stopped
    assert simrig.pin("D5").level == 0


def test_step_count_follows_the_rate(simrig: SimRig, board_port: BoardPort) -> None:
    seq = Seq()
    ok(board_port, seq, "STEP S1 1000 60000")
    simrig.wait_sim_us(10_000)
    before, t0 = simrig.steps("S1").count, simrig.time_us()
    simrig.wait_sim_us(300_000)
    after, t1 = simrig.steps("S1").count, simrig.time_us()
    assert after - before == pytest.approx((t1 - t0) / 1000, abs=3)


@pytest.mark.parametrize(("millivolts", "raw"), [(0, 0), (2500, 512), (1000, 205), (5000, 1023)])
def test_read_converts_the_voltage_on_the_analog_pin(
    simrig: SimRig, board_port: BoardPort, millivolts: int, raw: int
) -> None:
    seq = Seq()
    simrig.adc("A3", millivolts)
    values = ok(board_port, seq, "READ A3")
    assert values[0] == "A3"
    assert int(values[1]) == pytest.approx(raw, abs=2)


def test_period_sends_the_analog_value_until_stopped(simrig: SimRig, board_port: BoardPort) -> None:
    seq = Seq()
    simrig.adc("A1", 1250)
    ok(board_port, seq, "PERIOD A1 100")
    start = simrig.time_us()
    first = board_port.expect(Ain, channel="A1")
    assert isinstance(first, Ain) and first.raw == pytest.approx(256, abs=2)
    simrig.adc("A1", 3750)
    readings = [board_port.expect(Ain, channel="A1") for _ in range(4)]
    assert isinstance(readings[-1], Ain) and readings[-1].raw == pytest.approx(767, abs=2)
    elapsed = simrig.time_us() - start
    assert elapsed >= 5 * 100_000 - 10_000  # five readings, one per period, none early
    ok(board_port, seq, "PERIOD A1 0")
    assert not [f for f in board_port.collect(0.4) if isinstance(f, Ain)]


def test_status_lists_values_and_time_left(simrig: SimRig, board_port: BoardPort) -> None:
    seq = Seq()
    ok(board_port, seq, "SET D4 1 60000")
    ok(board_port, seq, "PWM D3 200 30000")
    ok(board_port, seq, "STEP S1 -300 20000")
    values = ok(board_port, seq, "STATUS")
    items = dict(v.split("=") for v in values if v != "+")
    assert items["D2"] == "0/0"
    assert items["D4"].startswith("1/") and 59_000 < int(items["D4"].split("/")[1]) <= 60_000
    assert items["D3"].startswith("200/")
    assert "S1" in items or values[-1] == "+"  # the list is cut when a frame cannot hold it
    (s1,) = ok(board_port, seq, "STATUS S1")
    value, left = s1.removeprefix("S1=").split("/")
    assert value == "-300" and 19_000 < int(left) <= 20_000
