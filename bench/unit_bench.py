"""Resident memory and CPU of a unit process with three EZO instruments read at 1 Hz.

Run: `.venv/bin/python -m bench.unit_bench [--seconds 60]`. Simulators, the
unit and Mosquitto are separate processes, as in the lab; only the unit is measured.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.stats import table
from provisioning.broker import MosquittoProcess

INSTRUMENTS = {"ph1": "ph", "do1": "do", "temp1": "rtd"}


def labedge(*args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "labedge", *args], stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name, MosquittoProcess() as broker:
        tmp = Path(name)
        sims = [labedge("sim", "ezo", "--probe", probe, "--link", str(tmp / module), log=tmp / "sim.log")
                for module, probe in INSTRUMENTS.items()]
        for module in INSTRUMENTS:
            while not (tmp / module).exists():
                time.sleep(0.05)
        names = []
        for module, probe in INSTRUMENTS.items():
            (tmp / f"{module}.yaml").write_text(
                f"module: {module}\ndriver: ezo\nprobe: {probe}\nport: {tmp / module}\nperiod_s: 1\n")
            names.append(f"{module}.yaml")
        (tmp / "unit.yaml").write_text(
            f"unit: bench-mem\nbroker: {{host: 127.0.0.1, port: {broker.port}}}\n"
            f"data_dir: {tmp / 'data'}\nmodules: [{', '.join(names)}]\n")
        unit = labedge("edge", "run", "--config", str(tmp / "unit.yaml"), log=tmp / "unit.log")
        try:
            process = psutil.Process(unit.pid)
            time.sleep(args.warmup)
            cpu_start = process.cpu_times()
            wall_start = time.monotonic()
            peak_rss = 0
            while time.monotonic() - wall_start < args.seconds:
                peak_rss = max(peak_rss, process.memory_info().rss)
                time.sleep(1.0)
            cpu_end = process.cpu_times()
            wall = time.monotonic() - wall_start
            memory = process.memory_full_info()
        finally:
            unit.send_signal(signal.SIGTERM)
            unit.wait(15)
            for sim in sims:
                sim.terminate()
                sim.wait(10)
    cpu = (cpu_end.user + cpu_end.system - cpu_start.user - cpu_start.system) / wall
    table("unit process, three instruments at 1 Hz", [
        ("resident memory (RSS), end", f"{memory.rss / 2**20:6.1f} MB   (target < 45 MB)"),
        ("resident memory (RSS), peak", f"{peak_rss / 2**20:6.1f} MB"),
        ("unique memory (USS)", f"{memory.uss / 2**20:6.1f} MB"),
        ("CPU, share of one core", f"{cpu * 100:6.2f} %   (target < 2 %) over {wall:.0f} s"),
    ])


if __name__ == "__main__":
    main()
