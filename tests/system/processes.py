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
