"""Answers saved later, on a thread, once for many; write-ahead saves unchanged; never old over new."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hub.controller.effects import CommandEffect, Outcome
from hub.controller.run_store import RunStore, StateSaver
from hub.controller.runner import ControllerRunner
from hub.script.model import Value
from tests.edge.gpio_fixtures import ManualClock, settle
from tests.hub.controller.scripts import at, cmd, script, task, wait
from tests.hub.controller.test_runner import FakeSink

UNITS = tuple(f"u{n}" for n in range(10))
BURST = script(*(task(f"on_{u}", at(10), cmd(f"{u}/pump1", "on"), wait(60), cmd(f"{u}/pump1", "off"))
                 for u in UNITS), text="experiment: burst\n")


class CountingStore(RunStore):
    """A RunStore that counts its state writes, sees two at once, and can hold the thread's writes."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.writes: list[bytes] = []
        self.threads: list[str] = []
        self.active = 0
        self.overlapped = False
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def write_state(self, data: bytes) -> None:
        self.active += 1
        self.overlapped = self.overlapped or self.active > 1
        try:
            self.entered.set()
            if threading.current_thread() is not threading.main_thread():
                assert self.gate.wait(10)
            super().write_state(data)
            self.writes.append(data)
            self.threads.append(threading.current_thread().name)
        finally:
            self.active -= 1


class SavedAtSend:
    """A plant that reads the saved state as each command goes out, and answers when released."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.in_file_at_send: list[bool] = []
        self.release = asyncio.Event()

    async def command(self, unit: str, module: str | None, cmd: str, args: Mapping[str, Value],
                      command_id: str | None = None) -> Outcome:
        self.in_file_at_send.append(str(command_id) in self.store.state_path.read_text())
        await self.release.wait()
        return Outcome("done")


class AnswersAtOnce:
    """The plant after a restart: notes every command id it is asked and answers `done`."""

    def __init__(self) -> None:
        self.asked: list[str | None] = []

    async def command(self, unit: str, module: str | None, cmd: str, args: Mapping[str, Value],
                      command_id: str | None = None) -> Outcome:
        self.asked.append(command_id)
        return Outcome("done")


async def killed(running: asyncio.Task[None], store: RunStore) -> None:
    """The runner gone as a SIGKILL leaves it: the state file as it was, nothing saved on the way out."""
    snapshot = store.state_path.read_bytes()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    store.state_path.write_bytes(snapshot)


def in_flight(store: RunStore) -> set[str]:
    snapshot: dict[str, Any] = json.loads(store.state_path.read_text())["snapshot"]
    return {str(r["command"]["effect_id"]) for r in snapshot["runs"] if r.get("command")}


async def until_idle(saver: StateSaver) -> None:
    for _ in range(500):
        if saver.idle and not saver._lock.locked():
            await settle()
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the saver never finished")


async def test_a_burst_of_answers_is_saved_once_on_a_thread_after_its_write_ahead(tmp_path: Path) -> None:
    clock, sink = ManualClock(), FakeSink()
    store = CountingStore(tmp_path / "controller")
    plant = SavedAtSend(store)
    runner = ControllerRunner.open(BURST, run_id="run-1", plant=plant, clock=clock, sink=sink, store=store)
    running = asyncio.create_task(runner.run())
    await clock.advance(10)
    await settle()
    assert plant.in_file_at_send == [True] * 10  # write-ahead: every command in the file before its send
    assert len(in_flight(store)) == 10
    before = len(store.writes)
    store.gate.clear()  # the saver's thread waits: the answers are taken, not yet saved
    plant.release.set()
    await settle()
    assert len(in_flight(store)) == 10  # a crash now: every command re-sent with its id on resume
    store.gate.set()
    await until_idle(runner._saver)
    assert in_flight(store) == set()
    assert len(store.writes) == before + 1  # ten answers, one save
    assert store.threads[-1] == "controller-state"
    assert not store.overlapped
    await runner.stop()
    await running


async def test_an_answer_not_yet_saved_is_re_sent_with_its_id_after_a_crash(tmp_path: Path) -> None:
    clock, sink = ManualClock(), FakeSink()
    store = CountingStore(tmp_path / "controller")
    plant = SavedAtSend(store)
    plant.release.set()
    runner = ControllerRunner.open(BURST, run_id="run-1", plant=plant, clock=clock, sink=sink, store=store,
                                   outcome_save_s=3600)
    running = asyncio.create_task(runner.run())
    await clock.advance(10)
    await settle()
    ids = in_flight(store)
    assert len(ids) == 10 and runner.engine.runs  # answered in memory, the file still has them in flight
    assert all(r.command is None for r in runner.engine.runs.values())
    await killed(running, store)
    plant_after = AnswersAtOnce()
    again = ControllerRunner.open(BURST, run_id="run-1", plant=plant_after, clock=clock, sink=FakeSink(),
                                  store=RunStore(tmp_path / "controller"))
    second = asyncio.create_task(again.run())
    await settle()
    assert ids <= set(plant_after.asked)  # asked again with the same ids (answered from the kept replies)
    await again.stop()
    await second


class SlowWriter(FakeSink):
    """The recorder's writer, busy: the lines of commands about to be sent are taken, written later."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[str] = []

    def commands_sending(self, items: list[tuple[Any, float]]) -> None:
        self.queued += [effect.effect_id for effect, _ts in items]  # never written: a SIGKILL comes first


async def test_commands_whose_lines_a_kill_lost_are_re_sent_and_recorded_on_resume(tmp_path: Path) -> None:
    """The send does not wait for the recorder's lines: the saved state is the write-ahead."""
    clock, sink = ManualClock(), SlowWriter()
    store = CountingStore(tmp_path / "controller")
    plant = SavedAtSend(store)  # sent, never answered: the kill comes first
    runner = ControllerRunner.open(BURST, run_id="run-1", plant=plant, clock=clock, sink=sink, store=store)
    running = asyncio.create_task(runner.run())
    await clock.advance(10)
    await settle()
    assert plant.in_file_at_send == [True] * 10  # each command in the saved state before its send
    assert len(sink.queued) == 10 and not [e for e in sink.effects if isinstance(e[0], CommandEffect)]
    await killed(running, store)
    after, plant_after = FakeSink(), AnswersAtOnce()
    again = ControllerRunner.open(BURST, run_id="run-1", plant=plant_after, clock=clock, sink=after,
                                  store=RunStore(tmp_path / "controller"))
    second = asyncio.create_task(again.run())
    await settle()
    assert set(sink.queued) <= set(plant_after.asked)  # the same ids again, answered from the kept replies
    commands = [(e, outcome) for e, _ts, outcome in after.effects if isinstance(e, CommandEffect)]
    recorded = {e.effect_id for e, outcome in commands if outcome is None}
    answered = {e.effect_id for e, outcome in commands if outcome is not None}
    assert set(sink.queued) <= recorded and set(sink.queued) <= answered  # the record has them, answered
    await again.stop()
    await second


class OneLog(FakeSink):
    """The recorder as one ordered log: lines of commands about to be sent and answers, as written."""

    def commands_sending(self, items: list[tuple[Any, float]]) -> None:
        for effect, ts in items:
            self.effects.append((effect, ts, None))


class RefusesAtOnce:
    """A plant that answers without a round trip (a unit it has not seen: refused before any send)."""

    async def command(self, unit: str, module: str | None, cmd: str, args: Mapping[str, Value],
                      command_id: str | None = None) -> Outcome:
        return Outcome("rejected", {"kind": "state", "message": f"unit {unit} has not been seen yet"})


async def test_a_command_answered_at_once_is_recorded_sent_before_its_answer(tmp_path: Path) -> None:
    clock, sink = ManualClock(), OneLog()
    runner = ControllerRunner.open(BURST, run_id="run-1", plant=RefusesAtOnce(), clock=clock, sink=sink,
                                   store=RunStore(tmp_path / "controller"))
    running = asyncio.create_task(runner.run())
    await clock.advance(10)
    await settle()
    lines = [(e.effect_id, outcome) for e, _ts, outcome in sink.effects if isinstance(e, CommandEffect)]
    answered = [cid for cid, outcome in lines if outcome is not None]
    assert answered, "no command was answered"
    for cid in answered:
        sent_at = [i for i, (c, outcome) in enumerate(lines) if c == cid and outcome is None]
        answered_at = [i for i, (c, outcome) in enumerate(lines) if c == cid and outcome is not None]
        assert sent_at and sent_at[0] < answered_at[0], (cid, lines)
    await runner.stop()
    await running


def test_an_older_state_never_replaces_a_newer_one_and_writes_never_overlap(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "controller")
    saver = StateSaver(store)
    store.gate.clear()
    store.entered.clear()
    saver.later(1, b'{"n": 1}')
    assert store.entered.wait(5)  # the thread is inside the write of 1
    saver.later(2, b'{"n": 2}')  # waits behind it, then is superseded
    writer = threading.Thread(target=saver.now, args=(3, b'{"n": 3}'))
    writer.start()  # a write-ahead save: waits for the write in progress, never beside it
    writer.join(0.2)
    assert writer.is_alive()
    store.gate.set()
    writer.join(5)
    saver.later(2, b'{"n": 2}')  # handed over late (an older state): never written over 3
    saver.close()
    assert store.state_path.read_bytes() == b'{"n": 3}'
    # 2 went in before 3 or was dropped as older, depending on who took the lock first: never after it
    assert store.writes in ([b'{"n": 1}', b'{"n": 3}'], [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}'])
    assert not store.overlapped


async def test_a_failed_background_save_is_reported_and_retried(tmp_path: Path) -> None:
    clock, sink = ManualClock(), FakeSink()
    store = CountingStore(tmp_path / "controller")
    plant = SavedAtSend(store)
    statuses: list[dict[str, Any]] = []
    runner = ControllerRunner.open(BURST, run_id="run-1", plant=plant, clock=clock, sink=sink, store=store,
                                   on_status=statuses.append)
    running = asyncio.create_task(runner.run())
    await clock.advance(10)
    await settle()
    store.state_path.unlink()
    store.state_path.mkdir()  # a rename onto a directory fails like a broken disk would
    plant.release.set()
    for _ in range(300):
        await asyncio.sleep(0.01)
        if runner.persist_error is not None:
            break
    assert runner.persist_error is not None and "state.json" in runner.persist_error
    store.state_path.rmdir()
    await clock.advance(2)  # the retry, `persist_interval_s` later
    await until_idle(runner._saver)
    assert runner.persist_error is None
    assert in_flight(store) == set()
    await runner.stop()
    await running
