"""`labedge hub simulate SCRIPT --speed N --duration D --out DIR`: a script against the simulated vessel.

No broker and no unit: the script's units are read from the files it names
(or `--units DIR`), simulated in-process (hub.simulate.plant) over one
respirometry vessel, and the controller's engine runs on a simulated clock.
The recorder writes the same files as a real run (timestamps from the
simulated clock) under DIR/runs/RUN_ID/, beside `plot.png` and `summary.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lecis.errors import ConfigError, LabedgeError, SettingInvalid

if TYPE_CHECKING:
    from hub.script.model import Script
    from lecis.dcd import Dcd
    from lecis.wire.birth import Birth

log = logging.getLogger("labedge.simulate")

EXIT_OK, EXIT_USAGE = 0, 2
DEFAULT_OUT = Path("var/simulate")


def _duration(text: str) -> float:
    from hub.script.durations import EXPECTED, duration_value

    value = duration_value(float(text)) if re.fullmatch(r"\d+(\.\d+)?", text) else duration_value(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not {EXPECTED} above 0")
    return value


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of simulated seconds per wall second "
                                         "(0 or more; 0: as fast as possible)")
    return value


def _roles(text: str) -> dict[str, str]:
    from sim.vessel_link import parse_roles

    try:
        return parse_roles(text)
    except SettingInvalid as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _start(text: str) -> datetime:
    from lecis.clock import parse_ts

    try:
        return parse_ts(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UTC time such as 2026-01-01T00:00:00.000Z"
                                         ) from exc


def add_simulate_parser(hub_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = hub_subparsers.add_parser(
        "simulate", help="run a script against the simulated respirometry vessel, accelerated",
        description="Run SCRIPT against simulated units (its unit files, no broker needed) on an "
                    "accelerated clock. Writes the files of a real run under OUT/runs/RUN_ID/ "
                    "(timestamps from the simulated clock), plot.png and summary.json beside them, and "
                    "prints a summary: pH and temperature bands, OUR per aeration cycle against the model.",
        epilog="exit status: 0 the run completed, 2 bad arguments or script (every problem printed).")
    sim.add_argument("script", type=Path, metavar="SCRIPT", help="the experiment script (YAML)")
    sim.add_argument("--units", type=Path, metavar="DIR", default=None,
                     help="find the units' configs or DCD folders here instead of where the script says")
    sim.add_argument("--speed", type=_speed, default=1000.0, metavar="N",
                     help="simulated seconds per wall second (default: 1000; 0: as fast as possible)")
    sim.add_argument("--duration", type=_duration, default=None, metavar="D",
                     help="how long to simulate, e.g. 6h or 90m (default: the script's duration)")
    sim.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                     help=f"data folder the recorder writes to (default: {DEFAULT_OUT})")
    sim.add_argument("--run-id", default=None, metavar="ID",
                     help="the run's id, its folder under OUT/runs/ (default: sim-EXPERIMENT-START)")
    sim.add_argument("--start", type=_start, default=None, metavar="UTC",
                     help="simulated start time, e.g. 2026-01-01T00:00:00.000Z (default: now)")
    sim.add_argument("--seed", type=int, default=0, help="seed of the probes' noise (default: 0)")
    sim.add_argument("--roles", type=_roles, default=None, metavar="LIST",
                     help="MODULE=ROLE pairs mapping equipment to the vessel's aeration, base and heater "
                          "(default: aeration=aeration,base_pump=base,heater=heater)")
    sim.add_argument("--no-plot", action="store_true", help="do not draw plot.png")
    sim.set_defaults(handler=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    from hub.script.errors import ScriptError
    from hub.script.loader import load_script
    from hub.simulate.units import read_units

    try:
        script = load_script(args.script, units_dir=args.units)
        births, dcds = read_units(args.script, script.units, args.units)
    except ScriptError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"labedge hub simulate: {len(exc.problems)} problem(s) in {args.script}; nothing was run",
              file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        for config_problem in exc.problems:
            print(config_problem, file=sys.stderr)
        return EXIT_USAGE
    duration = args.duration if args.duration is not None else script.duration_s
    if duration is None:
        print(f"labedge hub simulate: {args.script} sets no duration; give --duration (e.g. 6h)",
              file=sys.stderr)
        return EXIT_USAGE
    start = args.start or datetime.now(UTC).replace(microsecond=0)
    run_id = args.run_id or f"sim-{re.sub(r'[^A-Za-z0-9_.-]', '-', script.experiment)}-{start:%Y%m%dT%H%M%SZ}"
    try:
        return asyncio.run(_simulate(args, script, births, dcds, duration, start, run_id))
    except LabedgeError as exc:
        print(f"labedge hub simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE


async def _simulate(args: argparse.Namespace, script: Script, births: Mapping[str, Birth],
                    dcds: Mapping[str, tuple[Dcd, ...]], duration: float, start: datetime,
                    run_id: str) -> int:
    from hub.recorder import Recorder
    from hub.simulate.clock import SimClock
    from hub.simulate.plant import DEFAULT_ROLES
    from hub.simulate.plot import plot_run
    from hub.simulate.runner import Recording, Simulation, SimulationSettings
    from hub.simulate.summary import summarize
    from sim.vessel import VesselParams

    clock = SimClock(start)
    roles = args.roles if args.roles is not None else dict(DEFAULT_ROLES)
    settings = SimulationSettings(duration, args.speed, run_id, VesselParams(seed=args.seed), roles)
    wall0 = time.perf_counter()
    async with Recorder(args.out, clock) as recorder:
        meta = {"experiment": script.experiment, "script": str(args.script), "simulated": True,
                "speed": args.speed, "seed": args.seed, "duration_s": duration}
        recorder.open_run(run_id, meta, births, started_at=clock.epoch())
        sink = recorder.sink(run_id)
        sink.script_version(1, script.text, "labedge hub simulate", clock.epoch(), "")
        simulation = Simulation(script, births, dcds, settings, clock, Recording(recorder.ingest, sink))
        trace = await simulation.run()
        recorder.close_run(run_id)
        await recorder.flush()
    wall = time.perf_counter() - wall0
    outputs = {role: next((f"{unit}/{m}" for unit, unit_dcds in simulation.plant.births.items()
                           for m in unit_dcds.modules if roles.get(m) == role), None)
               for role in ("aeration", "base", "heater")}
    summary = summarize(script, trace, simulation.vessel, outputs["aeration"], wall)
    summary.not_simulated = simulation.plant.not_simulated()
    run_dir = args.out / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(summary.to_json(), indent=1) + "\n", encoding="utf-8")
    if not args.no_plot:
        plot_run(run_dir / "plot.png", trace, summary, simulation.vessel, outputs)
    for line in summary.lines():
        print(line)
    print(f"  files: {run_dir}" + ("" if args.no_plot else f" (plot: {run_dir / 'plot.png'})"))
    return EXIT_OK
