"""Control latency: a reading published at a unit -> the hub's actuator command arriving at that unit.

Run: `.venv/bin/python -m bench.control_latency_bench [--units 10] [--modules 5] [--rate 10] [--seconds 60]`.
Everything in one run, against one private Mosquitto on loopback:

1. the broker's own round trip (publish, receive the echo), idle;
2. light fake units in processes of their own (`--unit-processes`, 2 by default:
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
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.broker_rtt import broker_round_trips
from bench.stats import percentile, summary_ms, table
from lecis.clock import SystemClock, iso_ts
from lecis.dcd_loader import load_dcd
from lecis.mqtt_session import MqttSession, SessionConfig
from lecis.states import Control, LecisState
from lecis.topics import Topics
from lecis.wire import (
    Birth,
    BirthModule,
    Data,
    ModuleState,
    Reading,
    UnitState,
    UnitStateName,
    encode,
    from_bytes,
    to_bytes,
)
from provisioning.broker import MosquittoProcess

TARGET_P99_MS = 20.0
LOW, HIGH = 6.5, 7.5  # the controlled reading's two levels
ON_BELOW, OFF_ABOVE = 6.8, 7.2  # the script's thresholds
OUTPUT = "pump1"
CONTROLLED = "ph1"
# Instruments of every unit (module id -> DCD text).
INSTRUMENTS = {
    "ph1": "module: ph1\ndriver: ezo\nprobe: ph\nport: {port}\nperiod_s: 1\n",
    "do1": "module: do1\ndriver: ezo\nprobe: do\nport: {port}\nperiod_s: 1\n",
    "temp1": "module: temp1\ndriver: ezo\nprobe: rtd\nport: {port}\nperiod_s: 1\n",
    "ph2": "module: ph2\ndriver: ezo\nprobe: ph\nport: {port}\nperiod_s: 1\n",
    "temp2": "module: temp2\ndriver: ezo\nprobe: rtd\nport: {port}\nperiod_s: 1\n",
    "do2": "module: do2\ndriver: ezo\nprobe: do\nport: {port}\nperiod_s: 1\n",
}
VALUES = {"ph": 7.0, "do_mg": 8.1, "do_sat": 92.0, "temp": 25.0}
PUMP = f"module: {OUTPUT}\ndriver: gpio.pump\npin: 17\nmax_on_s: 3600\non_controller_loss: \"off\"\n"


def unit_name(i: int) -> str:
    return f"lat-{i:02d}"


def unit_phase(phases: str, index: int, units: int, seed: int) -> float:
    """Where unit `index`'s ticks fall in the period: the same in every units' process.

    `random`: independent units (each real unit starts sampling when it boots), seeded;
    `aligned`: every unit ticks at the same instant, the worst case for the hub;
    `spread`: evenly spaced."""
    if phases == "aligned":
        return 0.0
    if phases == "spread":
        return index / max(units, 1)
    return random.Random(f"{seed}:{index}").random()


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


# ---- the fake units (their own process) ---------------------------------------------------------

@dataclass
class Crossing:
    cmd: str  # the command the script must send for it
    published: float
    seq: int
    arrived: float | None = None


@dataclass
class FakeUnit:
    """One unit: readings out at a fixed rate, commands answered `done` at once."""

    name: str
    birth: Birth
    topics: Topics
    port: int
    rate: float
    half_cycle: int
    phase: float = 0.0  # where in the period this unit's ticks fall (0..1), on a grid all processes share
    session: MqttSession | None = None
    seq: dict[str, int] = field(default_factory=dict)
    crossings: list[Crossing] = field(default_factory=list)
    extra_commands: list[tuple[str, float]] = field(default_factory=list)  # (what, arrived)
    leased_at: float | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    boot: str = field(default_factory=lambda: str(uuid.uuid4()))
    pending: set[asyncio.Task[None]] = field(default_factory=set)
    output_on: bool = False
    started: float = 0.0
    stopped: float = 0.0

    def now_ts(self) -> str:
        return iso_ts(SystemClock().now())

    def on_message(self, topic: str, payload: bytes) -> None:
        arrived = time.monotonic()
        parts = self.topics.split(topic)
        if parts is None:
            return
        try:
            body = from_bytes(payload)
        except ValueError:
            return
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            return
        cmd = str(body.get("cmd"))
        result: dict[str, Any] = {}
        if parts[1] == "$cmd":
            reply_topic = self.topics.unit_reply(self.name)
            if cmd == "lease.acquire":
                given = body.get("args")
                cmd_args: dict[str, Any] = given if isinstance(given, dict) else {}
                result = {"token": self.token, "holder": cmd_args.get("holder"),
                          "expires_in_s": cmd_args.get("ttl_s", 30)}
                if self.leased_at is None:
                    self.leased_at = arrived
            elif cmd == "lease.renew":
                result = {"expires_in_s": 30}
        else:
            reply_topic = self.topics.reply(self.name, parts[1])
            if parts[1] == OUTPUT and cmd in ("on", "off"):
                self.note_command(cmd, arrived)
                self.output_on = cmd == "on"
                result = {"on": self.output_on}
            else:
                self.extra_commands.append((f"{parts[1]}:{cmd}", arrived))
        reply = {"id": body["id"], "status": "done", "error": None, "result": result, "ts": self.now_ts()}
        self.spawn(self.publish(reply_topic, to_bytes(reply)))
        if parts[1] == OUTPUT and cmd in ("on", "off"):
            self.spawn(self.publish_output_state())

    def note_command(self, cmd: str, arrived: float) -> None:
        """The oldest crossing still waiting for this command gets it; anything else is extra."""
        for crossing in self.crossings:
            if crossing.arrived is None and crossing.cmd == cmd:
                crossing.arrived = arrived
                return
        self.extra_commands.append((f"{OUTPUT}:{cmd}", arrived))

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        assert self.session is not None
        await self.session.publish(topic, payload, qos=1, retain=retain)

    async def publish_output_state(self) -> None:
        outputs = {"on": self.output_on}
        state = ModuleState(LecisState.IDLE, Control.REMOTE, self.now_ts(), outputs)
        await self.publish(self.topics.module_state(self.name, OUTPUT), encode(state), retain=True)

    async def announce(self) -> None:
        await self.publish(self.topics.birth(self.name), encode(self.birth), retain=True)
        for module in self.birth.modules:
            state = ModuleState(LecisState.IDLE, Control.REMOTE, self.now_ts(),
                                {"on": False} if module == OUTPUT else {})
            await self.publish(self.topics.module_state(self.name, module), encode(state), retain=True)
        state_msg = UnitState(UnitStateName.READY, self.boot, self.now_ts())
        await self.publish(self.topics.unit_state(self.name), encode(state_msg), retain=True)

    def value(self, module: str, reading: str, n: int) -> float:
        if module == CONTROLLED:
            return LOW if (n // self.half_cycle) % 2 == 0 else HIGH
        return VALUES[reading]

    async def run(self, stop: asyncio.Event, warmup_s: float) -> None:
        config = SessionConfig(port=self.port, client_id=f"{self.name}-{self.boot[:8]}")
        async with MqttSession(config, on_message=self.on_message) as session:
            self.session = session
            await session.subscribe(self.topics.unit_cmd(self.name))
            await session.subscribe(self.topics.module_cmd_filter(self.name))
            await self.announce()
            period = 1.0 / self.rate
            # CLOCK_MONOTONIC is one clock for every process: ticks on a shared grid, offset by the phase.
            grid = time.monotonic() + 0.5
            start = self.started = (math.floor(grid / period) + 1 + self.phase) * period
            n = 0
            previous = None
            while not stop.is_set():
                due = start + n * period
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                ts = self.now_ts()
                for module, spec in self.birth.modules.items():
                    if not spec.readings:
                        continue
                    values = {r.name: self.value(module, r.name, n) for r in spec.readings}
                    seq = self.seq[module] = self.seq.get(module, 0) + 1
                    payload = encode(Data(seq, (Reading(ts, values),)))
                    topic = self.topics.data(self.name, module)
                    if module == CONTROLLED:
                        level = values["ph"]
                        published = time.monotonic()
                        if previous is not None and level != previous and self.measuring(published, warmup_s):
                            self.crossings.append(Crossing("on" if level == LOW else "off", published, seq))
                        previous = level
                    self.spawn(self.publish(topic, payload))
                n += 1
            self.stopped = time.monotonic()
            await asyncio.gather(*self.pending, return_exceptions=True)

    def measuring(self, now: float, warmup_s: float) -> bool:
        return self.leased_at is not None and now - self.leased_at >= warmup_s


async def ping_loop(port: int, stop: asyncio.Event, rate: float) -> list[float]:
    """The broker's round trip from inside the units' process, under the run's load."""
    topic = f"bench/ping/{uuid.uuid4().hex}"
    times: list[float] = []
    got = asyncio.Event()
    async with MqttSession(SessionConfig(port=port), subscriptions=[topic],
                           on_message=lambda t, p: got.set()) as session:
        while not stop.is_set():
            got.clear()
            start = time.monotonic()
            await session.publish(topic, b"ping", qos=1)
            await got.wait()
            times.append(time.monotonic() - start)
            await asyncio.sleep(1.0 / rate)
    return times


async def units_main(args: argparse.Namespace) -> None:
    folder = Path(args.folder)
    topics = Topics()
    units = []
    for i in range(args.first, args.first + args.units):
        name = unit_name(i)
        dcds = sorted((folder / name / "dcd").glob("*.yaml"))
        modules = {p.stem: BirthModule.from_dcd(load_dcd(p)) for p in dcds}
        birth = Birth(name, "bench", str(uuid.uuid4()), iso_ts(SystemClock().now()), modules,
                      {"lease": {"max_ttl_s": 300}})
        units.append(FakeUnit(name, birth, topics, args.port, args.rate, args.half_cycle,
                              unit_phase(args.phases, i, args.total_units, args.seed)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    pings = asyncio.create_task(ping_loop(args.port, stop, 20.0)) if args.first == 0 else None
    await asyncio.gather(*(u.run(stop, args.warmup) for u in units))
    rtt = await pings if pings is not None else []
    out = {
        "rtt": rtt,
        "units": {u.name: {"crossings": [[c.cmd, c.published, c.arrived] for c in u.crossings],
                           "extra": u.extra_commands, "leased": u.leased_at is not None,
                           "readings": sum(u.seq.values()), "seconds": u.stopped - u.started}
                  for u in units},
    }
    Path(args.out).write_text(json.dumps(out))


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
    parser.add_argument("--role", choices=["bench", "units"], default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--total-units", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "units":
        asyncio.run(units_main(args))
        return
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
            fakes.append(spawn(["-m", "bench.control_latency_bench", "--role", "units",
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
