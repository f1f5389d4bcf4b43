"""The rig and the firmware under abuse: line noise, a host that closes and reopens the port, a test
process that goes away, commands the rig does not know."""

from __future__ import annotations

import random
import subprocess

import pytest

from firmware_bridge.frames import Ok
from tests.firmware_bridge.simrig import (  # noqa: F401
    SIMRIG,
    BoardPort,
    RigUnavailable,
    SimRig,
    board_port_fixture,
    build,
    require_rig,
    simrig_fixture,
)

AT_REST = ("D2=0/0", "D4=0/0", "D7=0/0", "D8=0/0", "D3=0/0", "S1=0/0")


def test_line_noise_moves_nothing_and_the_board_still_answers(simrig: SimRig, board_port: BoardPort) -> None:
    rng = random.Random(9)
    alphabet = b"$*\n\r 0123456789ABCDEF SET PWM STEP D2 D3 S1" + bytes(range(256))
    noise = bytes(rng.choice(alphabet) for _ in range(6000))
    board_port.write(noise)
    # Every noisy frame ends at the latest at the next `$` of this good one.
    assert board_port.request("7 STATUS", timeout=3.0) == Ok(7, AT_REST)
    assert simrig.pins() == {"D2": 0, "D3": 0, "D4": 0, "D5": 0, "D6": 0, "D7": 0, "D8": 0}
    answer = board_port.request("8 STATS")
    assert isinstance(answer, Ok)
    bad_crc, bad_frame, overlong, _, rx_overflow = map(int, answer.values)
    assert bad_crc + bad_frame + overlong == noise.count(b"$")  # each frame begun, dropped once
    assert rx_overflow == 0


def test_the_host_may_close_and_reopen_the_port(simrig: SimRig, board_port: BoardPort) -> None:
    assert board_port.request("1 SET D7 1 60000") == Ok(1)
    board_port.close()
    again = BoardPort(simrig.pty)
    try:
        assert again.request("2 PING") == Ok(2, ("2",))
    finally:
        again.close()
    assert simrig.pin("D7").level == 1


def test_the_rig_quits_when_its_input_closes() -> None:
    require_rig()
    elf, simrig = build()
    proc = subprocess.Popen([str(simrig), str(elf)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().startswith(b"pty /dev/")
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    proc.stdout.close()


def test_a_killed_rig_is_reported_not_waited_for(simrig: SimRig) -> None:
    simrig.proc.kill()
    simrig.proc.wait()
    with pytest.raises(RigUnavailable, match="simrig exited"):
        simrig.command("time")


def test_the_rig_names_what_it_does_not_understand(simrig: SimRig) -> None:
    for line in ("frobnicate", "pin D99", "adc 7 100", "adc A0 -3", "pwm D5", "steps S2"):
        with pytest.raises(ValueError, match="simrig"):
            simrig.command(line)
    assert simrig.command("time").startswith("time ")
    assert SIMRIG.name == "simrig"
