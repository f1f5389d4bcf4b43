"""`labedge bridge PORT ...` against the firmware in simavr, as a technician runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.firmware_bridge.simrig import SimRig, simrig_fixture  # noqa: F401

LABEDGE = [sys.executable, "-m", "labedge", "bridge"]


def run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LABEDGE, *args], capture_output=True, text=True, timeout=timeout)


def test_ping_prints_the_hello(simrig: SimRig) -> None:
    done = run(simrig.pty)
    assert done.returncode == 0, done.stderr
    assert "protocol 1, firmware 0.1.0, boot id" in done.stdout
    assert "PING answered in" in done.stdout
    assert "board counters since boot: bad_crc 0, bad_frame 0, overlong 0" in done.stdout


def test_set_by_hand_holds_the_output_then_back_to_default(simrig: SimRig) -> None:
    proc = subprocess.Popen([*LABEDGE, simrig.pty, "set", "D7", "on", "--for", "5"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("D7 on for 5 s"), first
        assert simrig.pin("D7").level == 1
        simrig.wait_sim_us(2_500_000)  # past the firmware's 2 s watchdog: refreshed
        assert simrig.pin("D7").level == 1
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "D7 back to its default" in out
    assert simrig.pin("D7").level == 0


def test_read_and_refused_channel(simrig: SimRig) -> None:
    simrig.adc("A1", 2000)
    done = run(simrig.pty, "read", "A1")
    assert done.returncode == 0 and done.stdout.startswith("A1 409"), done
    refused = run(simrig.pty, "set", "D9", "on", "--for", "1")
    assert refused.returncode == 3
    assert "bad_channel D9" in refused.stderr


def test_missing_port_is_one_clear_line(tmp_path: Path) -> None:
    done = run(str(tmp_path / "ttyACM9"))
    assert done.returncode == 2
    assert done.stderr.strip().endswith("(ls /dev/ttyACM* /dev/ttyUSB* /dev/serial/by-id/)")
    assert "does not exist; is the board plugged in?" in done.stderr
    bad = run(str(tmp_path), "set", "D2", "maybe")
    assert bad.returncode == 2 and "not a whole number (or on/off)" in bad.stderr


def test_a_channel_that_is_not_a_pin_name_is_refused_before_anything_is_sent(simrig: SimRig) -> None:
    done = run(simrig.pty, "set", "D$2", "on", "--for", "1")
    assert done.returncode == 2 and "expected an Uno pin name such as D2" in done.stderr, done


def test_the_labs_board_program_keeps_a_port_name_on_the_firmware(tmp_path: Path) -> None:
    from tests.firmware_bridge.simrig import require_rig
    from tests.system.processes import wait_path

    require_rig()
    link = tmp_path / "dev" / "board"
    proc = subprocess.Popen([sys.executable, "-m", "firmware_bridge.emulated", "--link", str(link)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "in simavr on" in proc.stdout.readline()
        wait_path(link)
        done = run(str(link))
        assert done.returncode == 0 and "firmware 0.1.0" in done.stdout, done
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    assert not link.exists() and not link.is_symlink()
