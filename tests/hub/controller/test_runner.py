"""The runner on a manual clock: commands reach the plant with their ids, state survives a crash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from hub.controller.effects import Effect, Outcome
from hub.controller.run_store import RunStateCorrupt, RunStateInUse, RunStore
from hub.controller.runner import ControllerRunner
from hub.script.model import Script, Value
from tests.edge.gpio_fixtures import ManualClock, settle
from tests.hub.controller.scripts import at, cmd, edit, every, log, onoff, reading, script, task, wait


class FakePlant:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, str, dict[str, Value], str | None]] = []
        self.hold = asyncio.Event()
        self.hold.set()

    async def command(self, unit: str, module: str | None, cmd: str, args: Mapping[str, Value],
                      command_id: str | None = None) -> Outcome:
        self.sent.append((unit, module, cmd, dict(args), command_id))
        await self.hold.wait()
        return Outcome("done")


class FakeSink:
    def __init__(self) -> None:
        self.effects: list[tuple[Effect, float, Outcome | None]] = []
        self.versions: list[tuple[int, str, str]] = []

    def effect(self, effect: Effect, ts: float, outcome: Outcome | None) -> None:
        self.effects.append((effect, ts, outcome))

    def script_version(self, version: int, text: str, author: str, ts: float, diff: str) -> None:
        self.versions.append((version, author, diff))


SCRIPT = script(task("aerate", at(30), cmd("u1/aeration", "on"), wait(60), cmd("u1/aeration", "off")),
                task("tick", every(600), log("t")),
                loops=(onoff("ph", "u1/ph1.ph", "u1/base_pump", 6.8, 7.0),), text="experiment: test\n")


def make(tmp_path: Path, clock: ManualClock, plant: FakePlant, sink: FakeSink, s: Script = SCRIPT,
         statuses: list[dict[str, Any]] | None = None) -> ControllerRunner:
    store = RunStore(tmp_path / "controller")
    return ControllerRunner.open(s, run_id="run-1", plant=plant, clock=clock, sink=sink, store=store,
                                 on_status=None if statuses is None else statuses.append)


async def test_commands_go_out_on_time_with_their_ids_and_readings_wake_the_loop(tmp_path: Path) -> None:
    clock, plant, sink = ManualClock(), FakePlant(), FakeSink()
    statuses: list[dict[str, Any]] = []
    runner = make(tmp_path, clock, plant, sink, statuses=statuses)
    task_ = asyncio.create_task(runner.run())
    await clock.advance(29)
    assert plant.sent == []
    await clock.advance(1)
    assert [s[:3] for s in plant.sent] == [("u1", "aeration", "on")]
    assert plant.sent[0][4] is not None  # the effect id goes on the wire
    t0 = clock.now().timestamp()
    await runner.reading(reading("u1/ph1.ph", 6.5, t0))
    await settle()
    assert [s[:3] for s in plant.sent][-1] == ("u1", "base_pump", "on")
    await clock.advance(60)
    assert [s[:3] for s in plant.sent][-1] == ("u1", "aeration", "off")
    assert statuses[-1]["state"] == "running" and statuses[-1]["loops"]["ph"]["on"] is True
    recorded = [o.status for _, _, o in sink.effects if o is not None]
    assert recorded == ["done", "done", "done"]
    assert sink.versions == [(1, "hub", "")]
    await runner.stop()
    await task_
    assert runner.engine.state == "stopped"


async def test_crash_and_restart_resumes_without_firing_twice(tmp_path: Path) -> None:
    clock, plant, sink = ManualClock(), FakePlant(), FakeSink()
    runner = make(tmp_path, clock, plant, sink)
    first = asyncio.create_task(runner.run())
    await clock.advance(35)
    plant.hold.clear()  # the `off` at 90 s goes out and its answer never comes: the hub is killed
    await clock.advance(60)
    off_id = plant.sent[-1][4]
    assert plant.sent[-1][2] == "off"
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await clock.advance(3000)  # down for 50 min: `tick` fell due 5 times
    plant2 = FakePlant()
    runner2 = make(tmp_path, clock, plant2, FakeSink())
    second = asyncio.create_task(runner2.run())
    await settle()
    sent = [(s[1], s[2]) for s in plant2.sent]
    assert ("aeration", "on") not in sent  # `at 30` fired before the crash: never again
    assert (plant2.sent[0][2], plant2.sent[0][4]) == ("off", off_id)  # re-sent with the same id
    assert runner2.engine.tasks["tick"].fired == 2  # the one at 0 s and one for the five missed
    await runner2.stop()
    await second


async def test_apply_script_records_versions_and_keeps_timers(tmp_path: Path) -> None:
    clock, plant, sink = ManualClock(), FakePlant(), FakeSink()
    runner = make(tmp_path, clock, plant, sink)
    running = asyncio.create_task(runner.run())
    await clock.advance(100)
    new = edit(SCRIPT, tasks=SCRIPT.tasks + (task("late", at(200), cmd("u1/heater", "on")),),
               text="experiment: test\n# v2\n")
    result = await runner.apply_script(new, "ana")
    assert result["accepted"] and result["version"] == 2 and result["added"] == ["task:late"]
    assert runner.engine.tasks["tick"].dues[0] == runner.engine.started_at + 600
    await clock.advance(100)
    assert [s[:3] for s in plant.sent][-1] == ("u1", "heater", "on")
    store = RunStore(tmp_path / "controller")
    assert [v["author"] for v in store.versions()] == ["hub", "ana"]
    assert store.version_text(2) == "experiment: test\n# v2\n"
    assert "+# v2" in store.versions()[1]["diff"]
    await runner.stop()
    await running


def test_a_truncated_state_file_is_reported_and_kept(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "controller")
    store.save_state("run-1", 1.0, {"format": 1})
    text = store.state_path.read_bytes()
    store.state_path.write_bytes(text[: len(text) // 2])
    with pytest.raises(RunStateCorrupt, match=r"state\.json.*Move the file aside"):
        make(tmp_path, ManualClock(), FakePlant(), FakeSink())
    assert store.state_path.read_bytes() == text[: len(text) // 2]  # never replaced
    assert json.loads(text)["run_id"] == "run-1"


async def test_control_goes_on_when_the_state_cannot_be_saved(tmp_path: Path) -> None:
    clock, plant, sink = ManualClock(), FakePlant(), FakeSink()
    statuses: list[dict[str, Any]] = []
    runner = make(tmp_path, clock, plant, sink, statuses=statuses)
    running = asyncio.create_task(runner.run())
    await clock.advance(1)
    state_dir = tmp_path / "controller"
    (state_dir / "state.json").unlink()
    (state_dir / "state.json").mkdir()  # a rename onto a directory fails like a broken disk would
    await runner.reading(reading("u1/ph1.ph", 6.5, clock.now().timestamp()))
    await settle()
    assert [s[:3] for s in plant.sent][-1] == ("u1", "base_pump", "on")  # the loop still acted
    assert statuses[-1]["persist_error"] is not None
    (state_dir / "state.json").rmdir()
    await clock.advance(2)
    await runner.reading(reading("u1/ph1.ph", 7.5, clock.now().timestamp()))
    await settle()
    assert statuses[-1]["persist_error"] is None
    assert json.loads((state_dir / "state.json").read_text())["run_id"] == "run-1"
    await runner.stop()
    await running


async def test_a_new_run_never_replaces_the_state_of_one_that_has_not_ended(tmp_path: Path) -> None:
    clock, plant, sink = ManualClock(), FakePlant(), FakeSink()
    runner = make(tmp_path, clock, plant, sink)
    await runner.start()
    store = RunStore(tmp_path / "controller")
    with pytest.raises(RunStateInUse, match="run-1, which has not ended"):
        ControllerRunner.open(SCRIPT, run_id="run-2", plant=plant, clock=clock, sink=sink, store=store)
    await runner.stop()
    await runner._drain()
    fresh = ControllerRunner.open(SCRIPT, run_id="run-2", plant=plant, clock=clock, sink=sink, store=store)
    assert fresh.engine.run_id == "run-2"
    assert json.loads((store.dir / "state.run-1.json").read_text())["snapshot"]["final"] == "stopped"
