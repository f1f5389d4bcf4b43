"""The async shell around the Engine: feeds it, carries out its effects, persists it.

The hub app calls `reading`, `event`, `unit_online`, `pause`, `resume`,
`stop` and `apply_script`; `run()` sleeps on the injected clock until the
engine's next due time and wakes early on any input. Commands go to the Plant
concurrently (one task each) and their outcomes come back to the engine.

Persistence is write-ahead: the snapshot is saved (RunStore, atomic) before
the effects of a step are carried out, so a command that went out is always
in the saved state with its id. Other saves are not waited for: they go to a
thread of their own (StateSaver: one write at a time, the latest state wins).
A command's answer is saved `outcome_save_s` later (0: the loop's next turn),
once for all the answers that came meanwhile: until then a crash leaves the
command in flight in the file, and the resume re-sends it with its id, which
the unit answers from its kept reply instead of carrying it out again. A step
whose only effects are derived signal values (and a PID's integral moving) is
saved at most `persist_interval_s` later, to keep fsyncs off the path of every
reading. The saved state is the only write-ahead: the commands' lines for the
recorder are handed over once the turn's commands are out, not waited for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from hub.controller.effects import CommandEffect, DerivedEffect, Effect, Outcome, Plant, Reading, Sink
from hub.controller.engine import Engine
from hub.controller.run_store import RunStateInUse, RunStore, StateSaver
from hub.next_turn import NextTurn
from hub.script.model import Script
from lecis.clock import Clock

log = logging.getLogger(__name__)


class ControllerRunner:
    def __init__(self, engine: Engine, *, plant: Plant, clock: Clock, sink: Sink, store: RunStore,
                 on_status: Callable[[dict[str, Any]], None] | None = None, persist_interval_s: float = 1.0,
                 outcome_save_s: float = 0.0, author: str = "hub") -> None:
        self.engine = engine
        self.plant = plant
        self.clock = clock
        self.sink = sink
        self.store = store
        self.on_status = on_status
        self.persist_interval_s = persist_interval_s
        self.outcome_save_s = outcome_save_s
        self.author = author
        self._wake = asyncio.Event()
        self._commands: set[asyncio.Task[None]] = set()
        self._ahead: list[tuple[CommandEffect, float]] = []  # commands whose lines are not written yet
        self._dirty_since: float | None = None
        self._last_status: dict[str, Any] | None = None
        self.finished = asyncio.Event()
        self.persist_error: str | None = None  # set while the state cannot be saved
        self._saver = StateSaver(store, on_done=self._saved_elsewhere)
        self._generation = 0  # of the last state handed to the saver
        self._saved_generation = 0  # of the last state known written
        self._loop: asyncio.AbstractEventLoop | None = None
        self._save_due: asyncio.Handle | asyncio.Task[None] | None = None  # an answer's save to come
        # The commands' lines for the recorder, once the commands of a loop turn are out (the other
        # command tasks are queued ahead of this callback): woken earlier, the recorder's writer thread
        # (the burst's readings to write) would hold the GIL between one send and the next.
        self._lines = NextTurn(self._record_sending)
        # The status, once per loop turn: a burst of fifty readings costs one status (all tasks, loops
        # and timers) instead of fifty, and it is published after the turn's commands are out.
        self._status = NextTurn(self._check_status)

    @classmethod
    def open(cls, script: Script, *, run_id: str, plant: Plant, clock: Clock, sink: Sink, store: RunStore,
             parse_version: Callable[[str], Script] | None = None, **kwargs: Any) -> ControllerRunner:
        """A runner for `run_id`: resumes the saved state of that run, else starts it fresh.

        On resume the running version is the stored one: `parse_version` turns its text back into a
        Script (the hub's loader with the units' capabilities); without it `script` is used.
        Raises RunStateCorrupt when the saved state cannot be read, RunStateInUse when it is of another
        run that has not ended (nothing is replaced); the state of an ended run is moved aside.
        """
        saved = store.load_state()
        if saved is not None and saved["run_id"] == run_id:
            snap = saved["snapshot"]
            version = int(snap.get("version", 1))
            if parse_version is not None and store.version_path(version).exists():
                text = store.version_text(version)
                if text != script.text:
                    script = parse_version(text)
            engine = Engine(script, run_id=run_id, started_at=float(saved["started_at"]), snapshot=snap)
            runner = cls(engine, plant=plant, clock=clock, sink=sink, store=store, **kwargs)
            runner._resuming = True
            return runner
        if saved is not None:
            old = str(saved["run_id"])
            if not saved["snapshot"].get("final"):
                raise RunStateInUse(f"{store.state_path} holds run {old}, which has not ended: resume it "
                                    f"(run id {old}) or stop it before starting run {run_id}")
            store.clear_state(archive_as=old)  # an ended run's state is kept beside, not overwritten
        engine = Engine(script, run_id=run_id, started_at=clock.now().timestamp())
        runner = cls(engine, plant=plant, clock=clock, sink=sink, store=store, **kwargs)
        runner._resuming = False
        return runner

    _resuming = False
    _begun = False

    def now(self) -> float:
        return self.clock.now().timestamp()

    # --- inputs ------------------------------------------------------------------

    async def reading(self, reading: Reading) -> None:
        await self._handle(self.engine.on_reading(reading, self.now()))

    async def event(self, unit: str, module: str | None, code: str) -> None:
        await self._handle(self.engine.on_event(unit, module, code, self.now()))

    async def unit_online(self, unit: str, online: bool) -> None:
        await self._handle(self.engine.on_unit_online(unit, online, self.now()))

    async def pause(self) -> dict[str, Any]:
        await self._handle(self.engine.pause(self.now()), force=True)
        return self.engine.status(self.now())

    async def resume(self) -> dict[str, Any]:
        await self._handle(self.engine.resume_run(self.now()), force=True)
        return self.engine.status(self.now())

    async def stop(self, reason: str = "stopped by the operator") -> dict[str, Any]:
        await self._handle(self.engine.stop(self.now(), reason), force=True)
        return self.engine.status(self.now())

    async def apply_script(self, script: Script, author: str) -> dict[str, Any]:
        """Take a checked new version: recorded at once, running from the next task boundary."""
        now = self.now()
        effects, diff = self.engine.apply(script, now, author)
        self.store.add_version(diff.version, script.text, author, now, diff.text)
        self._record_version(diff.version, script.text, author, now, diff.text)
        await self._handle(effects, force=True)
        return {"accepted": True, "running_version": self.engine.version, **diff.to_json()}

    # --- the loop ------------------------------------------------------------------

    async def start(self) -> None:
        """Start or resume the engine (first effects carried out); `run()` does this itself."""
        self._begun = True
        now = self.now()
        if self._resuming:
            effects = self.engine.resume(now)
        else:
            self.store.add_version(1, self.engine.script.text, self.author, now, "")
            self._record_version(1, self.engine.script.text, self.author, now, "")
            effects = self.engine.start(now)
        await self._handle(effects, force=True)

    async def run(self) -> None:
        """Run until the experiment stops or finishes (or the task is cancelled)."""
        if not self._begun:
            await self.start()
        try:
            while not self.engine.final:
                await self._sleep_until(self.engine.next_due())
                await self._handle(self.engine.advance(self.now()))
            await self._drain()
            self._persist()
        finally:
            self.finished.set()
            for task in list(self._commands):
                task.cancel()
            self.close()

    def close(self) -> None:
        """Save what is not saved yet (answers, derived values) and stop the saver's thread."""
        self._record_sending()  # lines of commands sent in the last turn, if their callback did not run
        if self._save_due is not None or self._dirty_since is not None:
            self._persist()
        self._saver.close()

    def wake(self) -> None:
        self._wake.set()

    async def _sleep_until(self, due: float | None) -> None:
        if self._dirty_since is not None:
            flush_at = self._dirty_since + self.persist_interval_s
            due = flush_at if due is None else min(due, flush_at)
        self._wake.clear()
        waiter = asyncio.ensure_future(self._wake.wait())
        sleeper = None if due is None else asyncio.ensure_future(self.clock.sleep(max(0.0, due - self.now())))
        pending = {waiter} if sleeper is None else {waiter, sleeper}
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in pending:
                f.cancel()
        if self._dirty_since is not None and self.now() >= self._dirty_since + self.persist_interval_s:
            self._save_elsewhere()

    async def _drain(self) -> None:
        while self._commands:
            await asyncio.gather(*list(self._commands), return_exceptions=True)

    # --- effects ---------------------------------------------------------------------

    async def _handle(self, effects: list[Effect], force: bool = False, answer: bool = False) -> None:
        commands = [e for e in effects if isinstance(e, CommandEffect)]
        durable = force or answer or any(not isinstance(e, DerivedEffect) for e in effects)
        if commands and not force:
            # Write-ahead, once for every step taken before the loop's next turn: the first command
            # task to run saves the state (with every command id of those steps) before it sends.
            # Readings that arrive together (a burst of units crossing a threshold at once) so cost
            # one save, not one each ahead of the last unit's command.
            self._save_before_send = True
        elif answer:
            self._save_soon()  # not write-ahead: the unit keeps its reply (see the module's docstring)
        elif durable:
            self._persist()  # write-ahead: a command is in the saved state before it goes out
        elif self._dirty_since is None:
            self._dirty_since = self.now()
        ts = self.now()
        for effect in effects:
            if isinstance(effect, CommandEffect):
                self._ahead.append((effect, ts))
                task = asyncio.ensure_future(self._command(effect, ts))
                self._commands.add(task)
                task.add_done_callback(self._commands.discard)
            else:
                self._record(effect, ts, None)
        self._publish_status()
        self._wake.set()

    _save_before_send = False

    async def _command(self, effect: CommandEffect, ts: float) -> None:
        save, self._save_before_send = self._save_before_send, False
        if save:
            self._persist()  # write-ahead: the state holds this command (and those of the same steps)
        self._lines.soon()
        try:
            outcome = await self.plant.command(effect.unit, effect.module, effect.cmd, effect.args,
                                               command_id=effect.effect_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the plant's own failure is this command's outcome, not the loop's end
            log.warning("command %s to %s/%s failed in the plant: %s", effect.cmd, effect.unit, effect.module,
                        exc)
            outcome = Outcome("failed", {"kind": "execution", "message": f"{type(exc).__name__}: {exc}"})
        self._record_sending()  # an answer that came at once (refused before the send) after its line
        self._record(effect, self.now(), outcome)
        await self._handle(self.engine.on_outcome(effect.effect_id, outcome, self.now()), answer=True)

    def _state(self) -> tuple[int, bytes]:
        self._generation += 1
        return self._generation, self.store.state_bytes(self.engine.run_id, self.engine.started_at,
                                                        self.engine.snapshot())

    def _save_soon(self) -> None:
        """The state saved on the saver's thread `outcome_save_s` from now, once for all answers till then."""
        if self._save_due is not None:
            return
        loop = self._loop = asyncio.get_running_loop()
        if self.outcome_save_s <= 0:
            self._save_due = loop.call_soon(self._save_elsewhere)
            return

        async def later() -> None:
            await self.clock.sleep(self.outcome_save_s)
            self._save_due = None
            self._save_elsewhere()

        self._save_due = asyncio.ensure_future(later())

    def _cancel_save_due(self) -> None:
        due, self._save_due = self._save_due, None
        if due is not None and due is not asyncio.current_task():
            due.cancel()

    def _save_elsewhere(self) -> None:
        """The current state to the saver's thread (not waited for); a failure comes back to `_saved`."""
        self._cancel_save_due()
        self._loop = asyncio.get_running_loop()
        self._dirty_since = None
        generation, data = self._state()
        self._saver.later(generation, data)

    def _saved_elsewhere(self, generation: int, error: OSError | None) -> None:
        """On the saver's thread: the outcome of a background save, taken back to the loop."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._saved, generation, error)
        except RuntimeError:  # the loop has closed (the hub is gone): nothing left to tell
            pass

    def _saved(self, generation: int, error: OSError | None) -> None:
        if generation <= self._saved_generation:
            return  # a newer state was written meanwhile
        if error is not None:
            self._save_failed(error)
            return
        self._saved_generation = generation
        if generation == self._generation and self.persist_error is not None:
            log.info("controller state saved again")
            self.persist_error = None  # (`_dirty_since` was cleared when this state was handed over)

    def _persist(self) -> None:
        """Save now (write-ahead: the caller carries out the step's effects once this returns)."""
        self._cancel_save_due()
        generation, data = self._state()
        try:
            self._saver.now(generation, data)
        except OSError as exc:
            # Control goes on without the disk (a full disk must not stop the pH loop); the next step
            # retries, and the status says the saved state is behind.
            self._save_failed(exc)
            return
        self._saved_generation = generation
        self._save_ok()

    def _save_failed(self, exc: OSError) -> None:
        if self.persist_error is None:
            log.error("saving the controller state failed (%s); control continues, retrying", exc)
        self.persist_error = f"{type(exc).__name__}: {exc}"
        self._dirty_since = self.now()

    def _save_ok(self) -> None:
        if self.persist_error is not None:
            log.info("controller state saved again")
        self.persist_error = None
        self._dirty_since = None

    def _record_sending(self) -> None:
        """The lines of every command not yet recorded, handed to the recorder's writer at once (one
        wake for a burst) and not waited for: the saved state is the write-ahead. A hub killed before
        the writer has written them finds those commands in flight in its state, re-sends them on
        resume under the same ids (each unit answers from the reply it kept) and records them then.
        Waiting for the writer too would put its work (the burst's readings first) ahead of the send."""
        ahead, self._ahead = self._ahead, []
        if not ahead:
            return
        many = getattr(self.sink, "commands_sending", None)
        if many is None:
            for effect, ts in ahead:
                self._record(effect, ts, None)
            return
        try:
            many(ahead)
        except Exception:  # recording must never stop control
            log.exception("recording the commands about to be sent failed")

    def _record(self, effect: Effect, ts: float, outcome: Outcome | None) -> None:
        try:
            self.sink.effect(effect, ts, outcome)
        except Exception:  # recording must never stop control
            log.exception("recording an effect failed")

    def _record_version(self, version: int, text: str, author: str, ts: float, diff: str) -> None:
        try:
            self.sink.script_version(version, text, author, ts, diff)
        except Exception:
            log.exception("recording script version %d failed", version)

    def _publish_status(self) -> None:
        if self.on_status is not None:
            self._status.soon()

    def _check_status(self) -> None:
        """Tell `on_status` of a changed status."""
        if self.on_status is None:
            return
        status = self.engine.status(self.now())
        status["persist_error"] = self.persist_error
        elapsed = status["elapsed"]
        status["elapsed"] = None  # compared without the time that passed (no copy made per step)
        same = status == self._last_status
        status["elapsed"] = elapsed
        if same:
            return
        self._last_status = {**status, "elapsed": None}
        try:
            self.on_status(status)
        except Exception:
            log.exception("publishing the experiment status failed")
