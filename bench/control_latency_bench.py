"""Control latency: a reading published at a unit -> the hub's actuator command arriving at that unit.

Run: `.venv/bin/python -m bench.control_latency_bench [--units 10] [--modules 5] [--rate 10] [--seconds 60]`.
Everything in one run, against one private Mosquitto on loopback:

1. the broker's own round trip (publish, receive the echo), idle;
2. light fake units (bench/latency_units.py) in processes of their own (`--unit-processes`, 2 by default:
   units 0-4 in one, 5-9 in the other; one MQTT session per unit). A real unit is
   a machine of its own; ten fakes on one loop took ~3.5 ms of the p50 before the
   hub saw a reading (each publish queued behind the other units' on the same
   loop), so they are spread over two. Each
   publishes contract-shaped `lab/U/M/data` with `seq` for every module at
   `--rate` Hz, retained `$birth`, module states and `$state`, and answers
   `lease.acquire`/`renew`/`release` and its output's commands with `done`.
   Each unit ticks at its own phase of the period (`--phases`): real units start
   sampling when each boots, so by default the phases are random (seeded);
   `aligned` makes all fifty readings of a tick arrive at once, the worst case.
   Module `ph1` of each unit steps between 6.5 and 7.5 every `--half-cycle`
   readings;
3. the real hub (`labedge hub run`, in a process of its own) running a
   generated script with two `when` tasks per unit: `ph1.ph < 6.8` -> `pump1: on`,
   `ph1.ph > 7.2` -> `pump1: off`.

The unit stamps (CLOCK_MONOTONIC) the reading that crosses a threshold just
before it publishes it, and the matching command when its message arrives;
both stamps are taken in that unit's process. While the hub runs, the first
units' process also times the broker's round trip on a session of its own (the same
loop, the same load), so the ratio compares like with like.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.broker_rtt import broker_round_trips
from bench.latency_units import CONTROLLED, OUTPUT, unit_name
from bench.stats import percentile, summary_ms, table
from provisioning.broker import MosquittoProcess

TARGET_P99_MS = 20.0
ON_BELOW, OFF_ABOVE = 6.8, 7.2  # the script's thresholds
# Instruments of every unit (module id -> DCD text).
INSTRUMENTS = {
    "ph1": "module: ph1\ndriver: ezo\nprobe: ph\nport: {port}\nperiod_s: 1\n",
    "do1": "module: do1\ndriver: ezo\nprobe: do\nport: {port}\nperiod_s: 1\n",
    "temp1": "module: temp1\ndriver: ezo\nprobe: rtd\nport: {port}\nperiod_s: 1\n",
    "ph2": "module: ph2\ndriver: ezo\nprobe: ph\nport: {port}\nperiod_s: 1\n",
    "temp2": "module: temp2\ndriver: ezo\nprobe: rtd\nport: {port}\nperiod_s: 1\n",
    "do2": "module: do2\ndriver: ezo\nprobe: do\nport: {port}\nperiod_s: 1\n",
}
PUMP = f"module: {OUTPUT}\ndriver: gpio.pump\npin: 17\nmax_on_s: 3600\non_controller_loss: \"off\"\n"


def write_unit_files(folder: Path, unit: str, modules: int, port: int) -> Path:
    """A unit config with `modules` instrument DCDs and the output: what the script names for `unit`."""
    dcd = folder / unit / "dcd"
    dcd.mkdir(parents=True, exist_ok=True)
    names = list(INSTRUMENTS)[:modules]
    for name in names:
        # Ports are named, never opened: the units are fakes.
        (dcd / f"{name}.yaml").write_text(INSTRUMENTS[name].replace("{port}", str(folder / unit / name)))
    (dcd / f"{OUTPUT}.yaml").write_text(PUMP)
    config = folder / unit / "unit.yaml"
    listed = ", ".join(f"dcd/{name}.yaml" for name in [*names, OUTPUT])
    config.write_text(f"unit: {unit}\nbroker: {{host: 127.0.0.1, port: {port}}}\n"
                      f"data_dir: {folder / unit / 'data'}\nmodules: [{listed}]\n")
    return config


# ---- the hub side ------------------------------------------------------------------------------

def write_script(folder: Path, units: list[str]) -> Path:
    """Two `when` tasks per unit on its controlled reading, toggling its output."""
    lines = ["experiment: control-latency", "units:"]
    lines += [f"  {u}: {u}/unit.yaml" for u in units]
    lines.append("tasks:")
    for u in units:
        name = u.replace("-", "_")
        lines += [
            f"  - name: {name}_low",
            f"    when: {u}/{CONTROLLED}.ph < {ON_BELOW}",
            "    do:",
            f"      - {u}/{OUTPUT}: on",
            f"  - name: {name}_high",
            f"    when: {u}/{CONTROLLED}.ph > {OFF_ABOVE}",
            "    do:",
            f"      - {u}/{OUTPUT}: off",
        ]
    script = folder / "latency.yaml"
    script.write_text("\n".join(lines) + "\n")
    return script


def write_hub_config(folder: Path, port: int, script: Path) -> Path:
    config = folder / "hub.yaml"
    config.write_text(f"hub: hub-bench\nbroker: {{host: 127.0.0.1, port: {port}}}\n"
                      f"data_dir: {folder / 'hub-data'}\nscript: {script}\n")
    return config


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen([sys.executable, *args], stdout=handle, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def end(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(hub: subprocess.Popen[bytes], fakes: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    out = {"hub": 0.0, "units": 0.0}
    for name, proc in [("hub", hub), *(("units", fake) for fake in fakes)]:
        times = psutil.Process(proc.pid).cpu_times()
        out[name] += times.user + times.system
    return out


def split(units: int, processes: int) -> list[tuple[int, int]]:
    """(first unit, count) of each fake units' process: as even as can be, none empty."""
    processes = max(1, min(processes, units))
    base, rest = divmod(units, processes)
    out, first = [], 0
    for n in range(processes):
        count = base + (1 if n < rest else 0)
        out.append((first, count))
        first += count
    return out


def merged(outs: list[Path]) -> dict[str, Any]:
    """The results of every units' process as one (the broker round trip is the first's)."""
    results: dict[str, Any] = {"rtt": [], "units": {}}
    for path in outs:
        part = json.loads(path.read_text())
        results["rtt"] += part["rtt"]
        results["units"].update(part["units"])
    return results


def cpu_share(start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
    """Percent of one core each process used between the two samples."""
    wall = time.monotonic() - start["start"]
    return {name: 100 * (end[name] - start[name]) / wall for name in ("hub", "units")}


def report(results: dict[str, Any], idle_rtt: list[float], args: argparse.Namespace,
           cpu: dict[str, float]) -> None:
    latencies: list[float] = []
    missed = extra = crossings = readings = 0
    rate = 0.0
    unleased = []
    for name, unit in results["units"].items():
        readings += unit["readings"]
        rate += unit["readings"] / max(unit["seconds"], 1e-9)
        if not unit["leased"]:
            unleased.append(name)
        if unit["crossings"]:  # before the first measured crossing: the hub's start, not counted
            first = unit["crossings"][0][1]
            extra += sum(1 for _what, arrived in unit["extra"] if arrived > first)
        # The last crossing may have been published just before the stop: not a miss.
        for _cmd, published, arrived in unit["crossings"][:-1]:
            crossings += 1
            if arrived is None:
                missed += 1
            else:
                latencies.append(arrived - published)
    if not latencies:
        raise SystemExit(f"no command arrived for any crossing (units never leased: {unleased}); "
                         f"see {args.keep or 'the hub log'}")
    loaded_rtt = results["rtt"]
    p99 = percentile(latencies, 0.99)
    table(f"Control latency over loopback Mosquitto: {args.units} units x {args.modules} modules at "
          f"{args.rate:g} Hz, the hub in a process of its own, the units in {args.unit_processes}, "
          f"phases {args.phases}" + (f" (seed {args.seed})" if args.phases == "random" else ""), [
              ("broker round trip, idle (publish -> own echo)", summary_ms(idle_rtt)),
              ("broker round trip, during the run (first units' process)", summary_ms(loaded_rtt)),
              ("reading published -> command arrived at the unit", summary_ms(latencies)),
              ("p99 / broker p99, idle / during the run",
               f"{p99 / percentile(idle_rtt, 0.99):6.2f}x / {p99 / percentile(loaded_rtt, 0.99):6.2f}x  "
               f"(target: p99 < {TARGET_P99_MS:g} ms)"),
              ("crossings measured / without a command (missed)", f"{crossings} / {missed}"),
              ("commands matching no crossing", f"{extra}"),
              ("readings published", f"{readings:,} ({rate:,.0f}/s)"),
              ("units whose lease the hub never took", ", ".join(unleased) or "none"),
              ("CPU of one core: hub / fake units (all)", f"{cpu.get('hub', float('nan')):.0f} % / "
                                                    f"{cpu.get('units', float('nan')):.0f} %"),
          ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--modules", type=int, default=5, help="instrument modules per unit (at most 6)")
    parser.add_argument("--rate", type=float, default=10.0, help="readings a second of every module")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time after the warm-up")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after the lease before measuring")
    parser.add_argument("--half-cycle", type=int, default=5,
                        help="readings of the controlled module at one level before it steps to the other")
    parser.add_argument("--unit-processes", type=int, default=2,
                        help="processes the fake units are spread over (each real unit is a machine)")
    parser.add_argument("--phases", choices=["random", "aligned", "spread"], default="random",
                        help="where each unit's ticks fall in the period: independent (random, seeded), "
                             "all at the same instant (aligned: the worst case), or evenly spread")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random phases")
    parser.add_argument("--keep", help="keep the files (configs, logs, hub data) in this folder")
    parser.add_argument("--profile", action="store_true", help="run the hub under cProfile (KEEP/hub.prof)")
    args = parser.parse_args()
    if not 1 <= args.modules <= len(INSTRUMENTS):
        parser.error(f"--modules must be 1..{len(INSTRUMENTS)}")
    if args.units < 1 or args.unit_processes < 1:
        parser.error("--units and --unit-processes must be at least 1")
    args.unit_processes = min(args.unit_processes, args.units)
    with tempfile.TemporaryDirectory() as name, MosquittoProcess() as broker:
        folder = Path(args.keep) if args.keep else Path(name)
        folder.mkdir(parents=True, exist_ok=True)
        units = [unit_name(i) for i in range(args.units)]
        for unit in units:
            write_unit_files(folder, unit, args.modules, broker.port)
        script = write_script(folder, units)
        hub_config = write_hub_config(folder, broker.port, script)
        idle_rtt = asyncio.run(broker_round_trips(broker.port, 1000))
        outs, fakes = [], []
        for n, (first, count) in enumerate(split(args.units, args.unit_processes)):
            out = folder / f"units-{n}.json"
            outs.append(out)
            fakes.append(spawn(["-m", "bench.latency_units",
                                "--port", str(broker.port), "--folder", str(folder), "--out", str(out),
                                "--first", str(first), "--units", str(count), "--rate", str(args.rate),
                                "--warmup", str(args.warmup), "--half-cycle", str(args.half_cycle),
                                "--phases", args.phases, "--seed", str(args.seed),
                                "--total-units", str(args.units)],
                               folder / f"units-{n}.log"))
        hub_args = ["-m", "labedge", "hub", "run", "--config", str(hub_config)]
        if args.profile:  # python -m pstats FOLDER/hub.prof
            hub_args = ["-m", "cProfile", "-o", str(folder / "hub.prof"), *hub_args]
        hub = spawn(hub_args, folder / "hub.log")
        cpu: dict[str, float] = {}
        try:
            deadline = time.monotonic() + args.warmup + args.seconds + 5
            measure_from = time.monotonic() + args.warmup + 5
            while time.monotonic() < deadline:
                if not cpu and time.monotonic() >= measure_from:
                    cpu = {"start": time.monotonic(), **cpu_seconds(hub, fakes)}
                if hub.poll() is not None:
                    raise SystemExit(f"the hub exited with {hub.returncode}: "
                                     f"{(folder / 'hub.log').read_text()[-3000:]}")
                for n, fake in enumerate(fakes):
                    if fake.poll() is not None:
                        raise SystemExit(f"fake units' process {n} exited: "
                                         f"{(folder / f'units-{n}.log').read_text()[-3000:]}")
                time.sleep(0.2)
            if cpu:
                cpu = cpu_share(cpu, cpu_seconds(hub, fakes))
        finally:
            for fake in fakes:
                end(fake)
            end(hub, 120.0 if args.profile else 20.0)
        for n, out in enumerate(outs):
            if not out.exists():
                raise SystemExit(f"fake units' process {n} wrote no results: "
                                 f"{(folder / f'units-{n}.log').read_text()[-3000:]}")
        report(merged(outs), idle_rtt, args, cpu)


if __name__ == "__main__":
    main()
