"""`labedge hub simulate` treats a pump on a board as the unit does: a pump, speed on PWM/stepper channels."""

from __future__ import annotations

import pytest

from hub.simulate.clock import SimClock
from hub.simulate.equipment import SimOutput
from hub.simulate.events import Agenda
from lecis.dcd_loader import parse_dcd
from lecis.errors import CommandInvalid

STEPPER = "module: feed\ndriver: bridge\nport: /dev/ttyACM0\nchannel: S1\nmax_on_s: 5\nml_per_s: 0.5\n"


def output(text: str) -> SimOutput:
    return SimOutput(parse_dcd(text), SimClock(), Agenda(), lambda: None, lambda *a: None)


def test_a_stepper_channel_is_a_pump_with_speed() -> None:
    feed = output(STEPPER)
    assert feed.is_pump and feed.pwm and feed.max_on_s == 5 and feed.ml_per_s == 0.5
    feed.check("dose", {"ml": 1.0, "speed": 0.5})
    with pytest.raises(CommandInvalid, match="longer than max_on_s"):
        feed.check("dose", {"ml": 2.0, "speed": 0.5})


def test_an_on_off_channel_takes_no_speed() -> None:
    valve = output(STEPPER.replace("channel: S1", "channel: D2"))
    assert valve.is_pump and not valve.pwm
