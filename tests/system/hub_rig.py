"""A bench for the hub's system tests: a unit process on simulated instruments and mock pins, hub processes.

Everything runs as real processes through the `labedge` command line, the way
supervisord runs them in the lab; the tests reach them only over MQTT and
through the files the hub writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.rig import Probe
from tests.system.processes import read_pin_log, simulators, spawn, start_recorded_unit, stop

EQUIPMENT = {
    "aeration": "module: aeration\ndriver: gpio.switch\npin: 27\nmax_on_s: 3600\non_controller_loss: hold\n",
    "base_pump": "module: base_pump\ndriver: gpio.pump\npin: 17\nmax_on_s: 30\nml_per_s: 0.5\n"
                 "max_ml_per_hour: 1000\n",
    "heater": "module: heater\ndriver: gpio.switch\npin: 22\nmax_on_s: 900\non_controller_loss: \"off\"\n",
}
INSTRUMENTS = {"ph1": "ph", "do1": "do", "temp1": "rtd"}


def write_bench(tmp: Path, unit: str, port: int, period_s: float = 0.2,
                equipment: dict[str, str] | None = None) -> Path:
    """unit.yaml: the three EZO instruments on simulator links, the equipment on mock pins."""
    (tmp / "dcd").mkdir(parents=True, exist_ok=True)
    names = []
    for module, probe in INSTRUMENTS.items():
        port_path = tmp / "dev" / module
        (tmp / "dcd" / f"{module}.yaml").write_text(
            f"module: {module}\ndriver: ezo\nprobe: {probe}\nport: {port_path}\nperiod_s: {period_s}\n")
        names.append(f"dcd/{module}.yaml")
    for module, text in (EQUIPMENT if equipment is None else equipment).items():
        (tmp / "dcd" / f"{module}.yaml").write_text(text)
        names.append(f"dcd/{module}.yaml")
    config = tmp / "unit.yaml"
    config.write_text(f"unit: {unit}\nbroker: {{host: 127.0.0.1, port: {port}, keepalive_s: 2}}\n"
                      f"data_dir: {tmp / 'data'}\nmodules: [{', '.join(names)}]\n")
    return config


def write_hub(tmp: Path, port: int, script: Path | None, data_dir: Path | None = None,
              hub: str = "hub-1", extra: str = "") -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "hub.yaml"
    script_line = f"script: {script}\n" if script is not None else ""
    config.write_text(f"hub: {hub}\nbroker: {{host: 127.0.0.1, port: {port}, keepalive_s: 2}}\n"
                      f"data_dir: {data_dir or tmp / 'data'}\n{script_line}lease_ttl_s: 6\n"
                      f"command_timeout_s: 5\n{extra}")
    return config


def start_hub(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return spawn(["-v", "hub", "run", "--config", str(config)], log)


async def exited(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    async with asyncio.timeout(timeout):
        while proc.poll() is None:
            await asyncio.sleep(0.05)
    return proc.returncode


def stored_seqs(data_dir: Path, unit: str, module: str) -> list[int]:
    """Every seq of a module's data and event messages in the hub's database, in order."""
    from hub.recorder.query import Reader

    reader = Reader(data_dir / "recorder.sqlite3")
    try:
        return reader.seqs(unit, module)
    finally:
        reader.close()


def csv_seqs(run_dir: Path, unit: str, module: str) -> list[int]:
    """Every seq in a run's CSV files of one module (all chunks, in order)."""
    seqs: list[int] = []
    for path in sorted((run_dir / "units" / unit).glob(f"{module}.*.csv")):
        lines = path.read_text().splitlines()
        header = lines[0].split(",")
        column = header.index("seq")
        seqs += [int(line.split(",")[column]) for line in lines[1:] if line]
    return sorted(set(seqs))


def jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


SYSTEM_SCRIPT = """\
experiment: hub system test
units:
  {unit}: unit.yaml
stale_after: 30s
tasks:
  - name: tick
    every: 2s
    do:
      - {unit}/aeration: on
      - wait: 1s
      - {unit}/aeration: off
  - name: heat_once
    at: {heat_at}
    do:
      - {unit}/heater: on
      - wait: 1s
      - {unit}/heater: off
      - log: "heated once"
"""
PINS = {"aeration": "GPIO27", "heater": "GPIO22", "base_pump": "GPIO17"}


def write_script(bench_dir: Path, unit: str, heat_at: str = "3s", text: str | None = None) -> Path:
    """The system tests' script, beside the bench's unit.yaml (its `units:` entry is relative)."""
    path = bench_dir / "script.yaml"
    path.write_text(text if text is not None else SYSTEM_SCRIPT.format(unit=unit, heat_at=heat_at))
    return path


@contextlib.contextmanager
def bench(tmp: Path, unit: str, port: int) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """Simulators and a unit process with recorded pins; yields (bench folder, unit process)."""
    bench_dir = tmp / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    config = bench_dir / "unit.yaml"
    if not config.exists():  # written already when the hub's script names it (and read by the hub)
        config = write_bench(bench_dir, unit, port)
    with simulators(bench_dir, INSTRUMENTS):
        proc = start_recorded_unit(config, bench_dir / "pins.log", bench_dir / "unit.log")
        try:
            yield bench_dir, proc
        finally:
            stop(proc)


def rising_edges(bench_dir: Path, module: str) -> int:
    history = read_pin_log(bench_dir / "pins.log").get(PINS[module], [])
    levels = [level for _, level in history]
    return sum(1 for before, after in zip([0.0, *levels], levels, strict=False) if before < 0.5 <= after)


def commands(run_dir: Path) -> list[dict[str, Any]]:
    """Every line of a run's commands.jsonl chunks, in order."""
    lines: list[dict[str, Any]] = []
    for path in sorted(run_dir.glob("commands.*.jsonl")):
        lines += jsonl(path)
    return lines


def kept_seqs(found: Probe, unit: str, module: str) -> list[int]:
    """The seqs of a module's data and events as a hub keeps them: repeats (re-sent backlog) dropped."""
    topics = {f"lab/{unit}/{module}/data", f"lab/{unit}/{module}/event"}
    return sorted({m.payload["seq"] for m in found.messages if m.topic in topics})


def last_state(found: Probe, hub: str) -> dict[str, Any]:
    """The last experiment state hub `hub` published (the broker is shared: others' are retained too)."""
    states = [s for s in found.on("lab/hub/experiment/state") if isinstance(s, dict) and s.get("hub") == hub]
    return states[-1] if states else {}


async def wait_recorded(found: Probe, data_dir: Path, unit: str, timeout: float = 30.0) -> None:
    """Until the database holds the last seq the broker carried of every instrument."""
    async with asyncio.timeout(timeout):
        while True:
            behind = [m for m in INSTRUMENTS if (stored_seqs(data_dir, unit, m) or [0])[-1]
                      < (kept_seqs(found, unit, m) or [0])[-1]]
            if not behind:
                return
            await asyncio.sleep(0.1)


def assert_every_seq_recorded(found: Probe, data_dir: Path, run_dir: Path, unit: str, minimum: int) -> None:
    for module in INSTRUMENTS:
        kept = kept_seqs(found, unit, module)
        assert len(kept) >= minimum, f"{module}: only {len(kept)} messages seen"
        assert kept == list(range(kept[0], kept[-1] + 1)), f"{module}: the unit's own stream has gaps"
        assert stored_seqs(data_dir, unit, module) == kept, f"{module}: the database differs from the unit"
        data = sorted({m.payload["seq"] for m in found.messages if m.topic == f"lab/{unit}/{module}/data"})
        assert csv_seqs(run_dir, unit, module) == data, f"{module}: the CSVs differ from the unit's data"


async def start_running(tmp: Path, port: int, unit: str, hub: str, found: Probe, heat_at: str = "3s"
                        ) -> tuple[subprocess.Popen[bytes], Path]:
    """`labedge hub run` on the system script, once the hub is online (the unit is not started here)."""
    config = write_hub(tmp / "hub", port, tmp / "bench" / "script.yaml", hub=hub)
    write_bench(tmp / "bench", unit, port)  # the script names it; the unit starts later
    write_script(tmp / "bench", unit, heat_at)
    proc = start_hub(config, tmp / "hub.log")
    await found.wait_for(lambda: (found.last("lab/hub/$state") or {}).get("online"), 30, "the hub online")
    return proc, tmp / "hub" / "data"
