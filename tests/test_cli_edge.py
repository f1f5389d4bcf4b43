"""`labedge edge run` refuses to start in one line, exit status 2, never a traceback.

Hostile or broken files (`--check`), a machine without the instruments
(`--no-port-check`), two units on one data folder, a machine without GPIO.
Each runs the real command as its own process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.data_lock import DataDirBusy, DataDirLock, LockHeld, PidLock, describe_holder
from edge.pins import PinFactoryUnavailable, default_pin_factory_kind, make_pin_factory, uses_pins
from hub.unit_client import connected_client
from lecis.config_loader import load_unit_config
from provisioning.broker import MosquittoProcess
from tests.lecis.test_yaml_loader import BOMB
from tests.rig import probe
from tests.system.inproc import PUMP, VALVE, write_equipment_unit
from tests.system.processes import LABEDGE, start_unit, stop

EXAMPLE = Path(__file__).parents[1] / "examples" / "unit.yaml"
PROBLEM_LINE = re.compile(r"^\S+:\d+: (?:[\w.\[\]]+(?:\.\.\.)?: )?\S.*$")


def labedge(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LABEDGE, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def equipment_unit(tmp: Path, port: int = 1, name: str = "cli-u") -> Path:
    return write_equipment_unit(tmp, name, port, {"pump1": PUMP, "valve1": VALVE})


HOSTILE_UNITS = {
    "alias bomb in unit.yaml": (BOMB, None, "unit.yaml:5: e[0]: aliases make this file more than"),
    "400-digit port": ("unit: u1\nbroker: {port: " + "9" * 400 + "}\ndata_dir: d\nmodules: [dcd/p.yaml]\n",
                       None, "unit.yaml:2: broker.port: number too large"),
    "5000-deep nesting in a DCD": ("unit: u1\ndata_dir: d\nmodules: [dcd/p.yaml]\n",
                                   "module: p\ndriver: gpio.pump\npin: 17\nmax_on_s: 5\ncommands: "
                                   + "[" * 5000 + "]" * 5000 + "\n",
                                   "p.yaml:5: commands[0][0][0][0][0]...: nested more than 32 levels"),
    "400-digit pin in a DCD": ("unit: u1\ndata_dir: d\nmodules: [dcd/p.yaml]\n",
                               "module: p\ndriver: gpio.pump\npin: " + "1" * 400 + "\nmax_on_s: 5\n",
                               "p.yaml:3: pin: number too large"),
    "self-referencing alias in a DCD": ("unit: u1\ndata_dir: d\nmodules: [dcd/p.yaml]\n",
                                        "module: p\ndriver: gpio.pump\npin: 17\nmax_on_s: 5\n"
                                        "commands: &c {x: *c}\n", "p.yaml:5: commands.x: the alias *c"),
}


@pytest.mark.parametrize("case", list(HOSTILE_UNITS))
def test_check_reports_hostile_files_as_located_problems_quickly(tmp_path: Path, case: str) -> None:
    unit, dcd, expected = HOSTILE_UNITS[case]
    (tmp_path / "dcd").mkdir()
    (tmp_path / "unit.yaml").write_text(unit)
    (tmp_path / "dcd" / "p.yaml").write_text(dcd or "module: p\ndriver: gpio.pump\npin: 17\nmax_on_s: 5\n")
    started = time.monotonic()
    result = labedge("edge", "run", "--config", str(tmp_path / "unit.yaml"), "--check")
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("labedge: ") and lines[-1].endswith("problem(s) in the configuration; "
                                                                     "nothing was started")
    assert all(PROBLEM_LINE.match(line) for line in lines[:-1]), lines
    assert any(expected in line for line in lines), lines
    assert elapsed < 30, f"{case}: {elapsed:.1f} s"


def test_check_reports_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "unit.yaml"
    path.write_bytes(b"unit: u1\ndata_dir: \xed\xa0\x80\n")  # a lone surrogate, as CESU-8 would write it
    result = labedge("edge", "run", "--config", str(path), "--check")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[0] == (f"{path}:2: cannot read the file: byte 0xed is not UTF-8 text; "
                                             "save the file as UTF-8")


def test_no_port_check_validates_a_config_on_a_machine_without_the_instruments() -> None:
    strict = labedge("edge", "run", "--config", str(EXAMPLE), "--check")
    assert strict.returncode == 2
    assert any("does not exist; is the instrument plugged in?" in line for line in strict.stderr.splitlines())
    relaxed = labedge("edge", "run", "--config", str(EXAMPLE), "--check", "--no-port-check")
    assert relaxed.returncode == 0, relaxed.stderr
    assert relaxed.stdout.strip().endswith("is fine") and relaxed.stderr == ""


def test_off_a_pi_without_mock_pins_one_line_and_exit_2(tmp_path: Path) -> None:
    # This machine (CI, a laptop) has no GPIO chip; lgpio is installed where its wheels exist.
    assert not list(Path("/dev").glob("gpiochip*")), "a test of a machine without GPIO pins"
    config = equipment_unit(tmp_path)
    env = {"GPIOZERO_PIN_FACTORY": ""}
    started = time.monotonic()
    result = labedge("edge", "run", "--config", str(config), env=env, timeout=30)
    assert time.monotonic() - started < 20
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("labedge: GPIO pins unavailable: ")
    assert lines[0].endswith("run with --pin-factory mock")
    # lgpio leaves its notification pipe in the data folder, not wherever the unit was started.
    assert (tmp_path / "data" / ".lgd-nfy0").exists()


def test_without_lgpio_the_line_says_so(tmp_path: Path) -> None:
    fake = tmp_path / "no_lgpio"
    fake.mkdir()
    (fake / "lgpio.py").write_text("raise ImportError('no lgpio here')\n")
    config = equipment_unit(tmp_path)
    env = {"PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    result = labedge("edge", "run", "--config", str(config), "--pin-factory", "lgpio", env=env, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "labedge: GPIO pins unavailable: the lgpio library is not installed (see docs/dependencies.md); "
        "on a machine without GPIO pins, run with --pin-factory mock"]


async def test_two_units_on_one_data_dir_the_second_names_the_first(mosquitto: MosquittoProcess,
                                                                   tmp_path: Path) -> None:
    config = equipment_unit(tmp_path, mosquitto.port, "cli-two")
    first = start_unit(config, tmp_path / "first.log")
    try:
        async with probe("127.0.0.1", mosquitto.port) as found:
            await found.wait_for(lambda: (found.last("lab/cli-two/$state") or {}).get("state") == "ready",
                                 20, "the first unit ready")
            boot = found.last("lab/cli-two/$state")["boot"]
            second = await asyncio.to_thread(
                labedge, "edge", "run", "--config", str(config), "--pin-factory", "mock", timeout=30)
            assert second.returncode == 2
            lines = (second.stdout + second.stderr).splitlines()
            assert len(lines) == 1, lines
            assert lines[0] == (f"labedge: the data folder {tmp_path / 'data'} is in use by another unit "
                                f"process, pid {first.pid} (unit cli-two, config {config}); stop it first, "
                                "or give this unit its own data_dir")
            # The first unit never noticed: same boot, still answering.
            assert first.poll() is None
            async with connected_client("127.0.0.1", mosquitto.port, "cli-two") as ctl:
                assert (await ctl.call(None, "STATUS", lease=None))["status"] == "done"
            assert found.last("lab/cli-two/$state")["boot"] == boot
    finally:
        assert stop(first) == 0


def test_data_dir_lock_is_released_with_its_holder(tmp_path: Path) -> None:
    code = ("import sys, time\nfrom pathlib import Path\nfrom edge.data_lock import DataDirLock\n"
            "with DataDirLock(Path(sys.argv[1]), 'u9', '/x/unit.yaml'):\n    print('held', flush=True)\n"
            "    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "d")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(DataDirBusy, match=f"pid {holder.pid} \\(unit u9, config /x/unit.yaml\\)"):
            DataDirLock(tmp_path / "d").acquire()
    finally:
        holder.kill()  # no clean-up: the kernel drops the lock with the process
        holder.wait()
    with DataDirLock(tmp_path / "d", "u10") as lock:
        info = json.loads((tmp_path / "d" / "unit.lock").read_text())
        assert info == {"pid": os.getpid(), "unit": "u10", "config": None}
        with pytest.raises(LockHeld):  # flock is per open file: even this process cannot take it twice
            PidLock(lock.path).acquire()


def test_describe_holder_reads_what_it_can() -> None:
    assert describe_holder('{"pid": 12, "unit": "b1", "config": "/u.yaml"}') == \
        "pid 12 (unit b1, config /u.yaml)"
    assert describe_holder('{"pid": 12, "port": 1883}') == "pid 12 (port 1883)"
    assert describe_holder("") == describe_holder("garbage") == "a process that has not written its pid yet"


def test_pin_factory_choice_and_units_that_need_pins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_pin_factory_kind({}) == "lgpio"
    assert default_pin_factory_kind({"GPIOZERO_PIN_FACTORY": "mock"}) == "mock"
    assert default_pin_factory_kind({"GPIOZERO_PIN_FACTORY": "pigpio"}) == "lgpio"
    config = load_unit_config(equipment_unit(tmp_path), check_ports=False)
    assert uses_pins(config)
    (tmp_path / "i").mkdir()
    (tmp_path / "i" / "dcd").mkdir()
    (tmp_path / "i" / "dcd" / "ph1.yaml").write_text("module: ph1\ndriver: ezo\nprobe: ph\nport: /dev/x\n")
    (tmp_path / "i" / "unit.yaml").write_text("unit: i1\ndata_dir: d\nmodules: [dcd/ph1.yaml]\n")
    assert not uses_pins(load_unit_config(tmp_path / "i" / "unit.yaml", check_ports=False))
    monkeypatch.setenv("LG_WD", str(tmp_path))  # lgpio's pipe in tmp_path; the variable restored after
    monkeypatch.chdir(tmp_path)  # lgpio also moves the process into LG_WD: the folder restored after
    with pytest.raises(PinFactoryUnavailable, match="run with --pin-factory mock"):
        make_pin_factory("lgpio", tmp_path / "elsewhere")
