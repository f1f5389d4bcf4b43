"""The controller's Engine alone: microseconds per reading taken in, for two scripts.

Run: `.venv/bin/python -m bench.engine_bench [--readings 100000] [--rounds 3] [--profile] [--runner]`.

- respirometry: examples/respirometry.yaml (2 signals, an ON/OFF and a PID
  loop, 2 guards, 2 `when` tasks) fed its four readings in turn (pH, DO,
  temperature, and turbidity that nothing reads), at 1 s per reading per
  module, with values that cross the loops' and conditions' thresholds.
- 50 conditions: 50 `when` tasks over 10 readings (5 per reading), fed those
  and 10 readings nothing reads, in turn.
- 10 conditions: one `when` task per reading over 10 readings, as the rules of
  bench.recorder_bench (whose readings are stamped from a fixed date, so
  mostly stale on arrival and never acted on).

Time is the readings' own (`now` = the reading's timestamp, as live), so
everything stays fresh; the engine's `advance` is called when `next_due`
says, and every command is answered `done` at once, as a runner would. The
figures: µs per `on_reading` call alone and per reading for every engine call
(on_reading + advance + outcomes), the median of `--rounds`. `--runner` also
feeds the scripts without signals through ControllerRunner as the hub does at
a high rate (system clock, readings stamped as they arrive, the state saved
write-ahead with fsync in a temporary folder, commands answered `done`, the
status read after every step): µs per reading of that whole path. (At that
rate a signal's 2-minute window would hold every reading since: not a
respirometry run.)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import math
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from bench.stats import table
from hub.controller.effects import CommandEffect, Effect, Outcome, Reading
from hub.controller.engine import Engine
from hub.controller.run_store import RunStore
from hub.controller.runner import ControllerRunner
from hub.script.loader import load_script, parse_script
from hub.script.model import Value
from lecis.clock import SystemClock, iso_ts
from lecis.dcd import ReadingSpec
from lecis.wire import Birth, BirthModule

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "respirometry.yaml"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
DONE = Outcome("done")

Feed = list[tuple[str, str, str, Callable[[int], float]]]  # unit, module, reading, value at step k


def respirometry() -> tuple[Engine, Feed]:
    script = load_script(EXAMPLE)
    feed: Feed = [
        ("bench-1", "ph1", "ph", lambda k: 6.97 + 0.12 * math.sin(k / 40)),
        ("bench-1", "do1", "do_mg", lambda k: 3.5 + 2.0 * math.sin(k / 150)),
        ("bench-1", "temp1", "temp", lambda k: 25.0 + 0.3 * math.sin(k / 300)),
        ("bench-1", "turbidity1", "turbidity", lambda k: 120.0 + (k % 7)),
    ]
    return Engine(script, run_id="bench", started_at=T0), feed


def _wave(phase: int) -> Callable[[int], float]:
    return lambda k: 50 + 45 * math.sin((k + phase) / 60)


def conditions(modules: int, per_module: int, read: int) -> tuple[Engine, Feed]:
    """`per_module` `when` tasks on each of the first `read` of `modules` readings, fed all of them."""
    birth = Birth("unit-0", "0.1.0", "boot", iso_ts(datetime.fromtimestamp(T0, UTC)), {
        f"m{m}": BirthModule("instrument", "ezo", (ReadingSpec("v", "mg/L", 0.0, 100.0),))
        for m in range(modules)
    })
    tasks = "\n".join(
        f'  - {{name: c{m}_{j}, when: "unit-0/m{m}.v > {10 + 15 * j} and unit-0/m{m}.v < {30 + 15 * j}", '
        f'do: [{{log: "c{m}_{j}"}}]}}'
        for m in range(read) for j in range(per_module)
    )
    text = f"experiment: bench\nunits: {{unit-0: unit-0.yaml}}\ntasks:\n{tasks}\n"
    script = parse_script(text, "bench.yaml", {"unit-0": birth})
    feed: Feed = [("unit-0", f"m{m}", "v", _wave(13 * m)) for m in range(modules)]
    return Engine(script, run_id="bench", started_at=T0), feed


def fifty_conditions() -> tuple[Engine, Feed]:
    return conditions(20, 5, 10)


def ten_conditions() -> tuple[Engine, Feed]:
    """As bench.recorder_bench's rules: one `when` task per module, 10 modules."""
    return conditions(10, 1, 10)


def run(engine: Engine, feed: Feed, readings: int) -> tuple[float, float, int]:
    """Seconds in on_reading, seconds in every engine call, effects returned."""
    in_reading = 0.0
    total = 0.0
    effects = 0
    clock = time.perf_counter

    def answer(eff: list[Effect], now: float) -> int:
        n = len(eff)
        todo = [e.effect_id for e in eff if isinstance(e, CommandEffect)]
        while todo:
            more = engine.on_outcome(todo.pop(), DONE, now)
            n += len(more)
            todo.extend(e.effect_id for e in more if isinstance(e, CommandEffect))
        return n

    t = clock()
    effects += answer(engine.start(T0), T0)
    total += clock() - t
    streams = len(feed)
    for i in range(readings):
        unit, module, name, value = feed[i % streams]
        k = i // streams
        now = T0 + 1.0 + k + (i % streams) * 0.001
        reading = Reading(unit, module, now, {name: value(k)}, k + 1)
        t = clock()
        eff = engine.on_reading(reading, now)
        t1 = clock()
        effects += answer(eff, now)
        due = engine.next_due()
        if due is not None and due <= now:
            effects += answer(engine.advance(now), now)
        t2 = clock()
        in_reading += t1 - t
        total += t2 - t
    return in_reading, total, effects


class _Plant:
    async def command(self, unit: str, module: str | None, cmd: str, args: Mapping[str, Value],
                      command_id: str | None = None) -> Outcome:
        return DONE


class _Sink:
    def effect(self, effect: Effect, ts: float, outcome: Outcome | None) -> None:
        pass

    def script_version(self, version: int, text: str, author: str, ts: float, diff: str) -> None:
        pass


def through_runner(build: Callable[[], tuple[Engine, Feed]], readings: int) -> float:
    """µs per reading through ControllerRunner as the hub drives it at a high rate: the system clock,
    readings stamped as they arrive, the state saved (write-ahead, fsync; coalesced to once a second
    otherwise) in a temporary folder, commands answered `done`, the status read after every step."""

    async def main(folder: Path) -> float:
        engine, feed = build()
        engine.started_at = engine.values.started_at = time.time()
        runner = ControllerRunner(engine, plant=_Plant(), clock=SystemClock(), sink=_Sink(),
                                  store=RunStore(folder), on_status=lambda status: None)
        task = asyncio.ensure_future(runner.run())
        await asyncio.sleep(0.05)
        streams = len(feed)
        t0 = time.perf_counter()
        for i in range(readings):
            unit, module, name, value = feed[i % streams]
            await runner.reading(Reading(unit, module, time.time(), {name: value(i // streams)}, i + 1))
            await asyncio.sleep(0)  # the run loop and the commands' tasks take their turn
        elapsed = time.perf_counter() - t0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return elapsed / readings * 1e6

    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(main(Path(tmp)))


SCRIPTS: dict[str, Callable[[], tuple[Engine, Feed]]] = {
    "respirometry": respirometry,
    "50 conditions": fifty_conditions,
    "10 conditions": ten_conditions,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one round per script")
    parser.add_argument("--runner", action="store_true",
                        help="also feed each script through ControllerRunner (state saved, as in the hub)")
    args = parser.parse_args()
    rows = []
    for label, build in SCRIPTS.items():
        if args.profile:
            engine, feed = build()
            prof = cProfile.Profile()
            prof.enable()
            run(engine, feed, args.readings)
            prof.disable()
            print(f"\n== profile: {label}")
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            continue
        results = []
        for _ in range(args.rounds):
            engine, feed = build()
            results.append(run(engine, feed, args.readings))
        on_reading = statistics.median(r[0] for r in results) / args.readings * 1e6
        total = statistics.median(r[1] for r in results) / args.readings * 1e6
        rows.append((label, f"on_reading {on_reading:6.2f} µs/reading   all engine calls {total:6.2f} "
                            f"µs/reading   ({1e6 / total:,.0f} readings/s; {results[-1][2]} effects)"))
        if args.runner and not build()[0].script.signals:
            through = statistics.median(through_runner(build, min(args.readings, 20_000))
                                        for _ in range(args.rounds))
            rows.append((f"{label}, runner", f"{through:6.2f} µs/reading through ControllerRunner "
                                             f"({1e6 / through:,.0f} readings/s)"))
    if rows:
        table(f"Controller engine alone, {args.readings} readings per round, median of {args.rounds} rounds",
              rows + [("target", "engine well under the recorder's share of 50 µs/reading "
                                 "(≥ 20,000 readings/s for recorder + rules)")])


if __name__ == "__main__":
    main()
