"""Start simulators and units as real processes, the way supervisord does in the lab."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LABEDGE = [sys.executable, "-m", "labedge"]


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    handle = log.open("ab")
    return subprocess.Popen(LABEDGE + args, stdout=handle, stderr=subprocess.STDOUT, env=full_env)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_path(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout:g} s")
        time.sleep(0.02)


@contextmanager
def simulators(tmp: Path, probes: dict[str, str], extra: list[str] | None = None
               ) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """One `labedge sim ezo` process per module id -> probe; links under tmp/dev."""
    (tmp / "dev").mkdir(exist_ok=True)
    procs = {}
    try:
        for module, probe in probes.items():
            procs[module] = spawn(["sim", "ezo", "--probe", probe, "--link", str(tmp / "dev" / module),
                                   "--seed", str(len(procs) + 1), *(extra or [])], tmp / f"sim-{module}.log")
        for module in probes:
            wait_path(tmp / "dev" / module)
        yield procs
    finally:
        for proc in procs.values():
            stop(proc)


def write_unit(tmp: Path, unit: str, port: int, modules: dict[str, str], period_s: float = 0.2,
               extra_unit: str = "", extra_dcd: str = "") -> Path:
    """A unit.yaml with one ezo DCD per module id -> probe, ports on the simulator links."""
    (tmp / "dcd").mkdir(exist_ok=True)
    names = []
    for module, probe in modules.items():
        (tmp / "dcd" / f"{module}.yaml").write_text(
            f"module: {module}\ndriver: ezo\nprobe: {probe}\nport: {tmp / 'dev' / module}\n"
            f"period_s: {period_s}\n{extra_dcd}"
        )
        names.append(f"dcd/{module}.yaml")
    config = tmp / "unit.yaml"
    config.write_text(
        f"unit: {unit}\nbroker: {{host: 127.0.0.1, port: {port}, keepalive_s: 2}}\n"
        f"data_dir: {tmp / 'data'}\nmodules: [{', '.join(names)}]\n{extra_unit}"
    )
    return config


def start_unit(config: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return spawn(["edge", "run", "--config", str(config), "--pin-factory", "mock"], log, env)


# A unit process whose mock pins write every level they take to a file, as it happens (one
# os.write per change), so the history survives even a SIGKILL of the process. The unit runs
# through the real command line; only gpiozero's mock PWM pin class is swapped for a recording one.
PIN_RECORDER = r"""
import os, sys, time
import gpiozero.pins.mock as mock

LOG = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


class RecordingPWMPin(mock.MockPWMPin):
    def __init__(self, factory, info):
        super().__init__(factory, info)
        self._record(self._state)

    def _change_state(self, value):
        changed = super()._change_state(value)
        if changed:
            self._record(value)
        return changed

    def _record(self, value):
        os.write(LOG, f"{self.info.name} {time.monotonic():.6f} {float(value)!r}\n".encode())


mock.MockPWMPin = RecordingPWMPin
from labedge.cli import main

sys.exit(main(sys.argv[2:]))
"""


def start_recorded_unit(config: Path, pin_log: Path, log: Path,
                        env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`labedge edge run --pin-factory mock` with every pin change appended to `pin_log`.

    Each line is `<pin name> <time.monotonic()> <level>`; the clock is the system's
    monotonic clock, the same in the test process.
    """
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    handle = log.open("ab")
    args = ["edge", "run", "--config", str(config), "--pin-factory", "mock"]
    return subprocess.Popen([sys.executable, "-c", PIN_RECORDER, str(pin_log), *args],
                            stdout=handle, stderr=subprocess.STDOUT, env=full_env)


def read_pin_log(pin_log: Path) -> dict[str, list[tuple[float, float]]]:
    """Pin name -> [(monotonic time, level)] in order, from a `start_recorded_unit` log."""
    history: dict[str, list[tuple[float, float]]] = {}
    if not pin_log.exists():
        return history
    for line in pin_log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            history.setdefault(parts[0], []).append((float(parts[1]), float(parts[2])))
    return history


def record_pins_released(pin_log: Path, pins: list[str]) -> None:
    """What the wiring does when a unit process dies: each output floats, the pull-down holds it off."""
    now = time.monotonic()
    with pin_log.open("a") as out:
        for pin in pins:
            out.write(f"{pin} {now:.6f} 0.0\n")
