"""`labedge bridge` with wrong ports, a busy port, channels of another kind, bad values: one clear line,
exit status 2 (no board / bad usage) or 3 (the board refused)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from firmware_bridge.frames import Hello, Ok
from tests.firmware_bridge.simrig import BoardPort
from tests.firmware_bridge.test_protocol_conformance import FakeTarget

LABEDGE = [sys.executable, "-m", "labedge", "bridge"]


def run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LABEDGE, *args], capture_output=True, text=True, timeout=timeout)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("labedge bridge: "), lines
    return lines[0]


@pytest.fixture
def fake() -> Iterator[FakeTarget]:
    target = FakeTarget()
    try:
        yield target
    finally:
        target.close()


@pytest.mark.parametrize(("args", "says"), [
    (("set", "D3", "on"), "set D3: D3 is not a set output; use pwm D3 DUTY (0..255)"),
    (("pwm", "D2", "128"), "pwm D2: D2 is not a pwm output; use set D2 on|off"),
    (("step", "D7", "100"), "step D7: D7 is not a step output; use set D7 on|off"),
    (("set", "S1", "on"), "set S1: S1 is not a set output; use step S1 RATE (-2000..2000)"),
    (("set", "D2", "on", "--for", "-1"), "--for -1.0: give a number of seconds above 0"),
    (("set", "D2", "on", "--for", "nan"), "--for nan: give a number of seconds above 0"),
    (("--timeout", "0"), "--timeout 0.0: give a number of seconds above 0"),
    (("--baudrate", "0"), "--baudrate 0: give the board's line speed, e.g. 115200"),
])
def test_bad_usage_is_one_line_before_the_port_is_touched(tmp_path: Path, args: tuple[str, ...],
                                                          says: str) -> None:
    done = run(str(tmp_path / "ttyNONE"), *args)  # the port does not exist: usage is told first
    assert done.returncode == 2
    assert one_line(done) == f"labedge bridge: {says}"


def test_a_port_that_is_no_serial_port() -> None:
    done = run("/dev/null", "--timeout", "1")
    assert done.returncode == 2
    assert "/dev/null: is not a serial port" in one_line(done)


def test_a_port_in_use_by_another_program_says_so(fake: FakeTarget) -> None:
    with serial.Serial(fake.pty, exclusive=True):
        done = run(fake.pty, "--timeout", "1.5")
    assert done.returncode == 2
    assert "the port is in use by another program" in one_line(done)


def test_a_board_that_already_runs_answers_within_a_short_timeout(fake: FakeTarget) -> None:
    port = BoardPort(fake.pty)
    try:
        port.expect(Hello, timeout=3)
        assert port.request("1 PING") == Ok(1, ("1",))  # heard a host: it sends no HELLO any more
    finally:
        port.close()
    done = run(fake.pty, "--timeout", "1.5")
    assert done.returncode == 0, done.stderr
    assert "sent no HELLO" in done.stdout and "PING answered in" in done.stdout


def test_a_channel_the_board_does_not_have_is_refused_by_the_board(fake: FakeTarget) -> None:
    done = run(fake.pty, "set", "D9", "on", "--for", "0.2")
    assert done.returncode == 3
    assert one_line(done) == "labedge bridge: the board refused 'SET D9 1 2000': bad_channel D9"
    assert os.path.exists(fake.pty)
