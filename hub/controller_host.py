"""The experiment controller inside the hub: run id, run store, run files, and the runner's task.

Started with the hub, it resumes the run saved in `data_dir/controller`
(after a crash or a restart: same run id, same files) or begins a new one
once every unit the script names is online and leased. Readings, events and
presence are queued to the runner in arrival order. It is also the
`Experiment` the hub commands drive, and it checks the running script again
whenever a unit's `$birth` arrives.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.config import HubConfig
from hub.controller.effects import Effect, LogEffect, Outcome, Reading, SessionEffect, Sink
from hub.controller.run_store import RunStore
from hub.controller.runner import ControllerRunner
from hub.experiment_topics import ExperimentTopics
from hub.mqtt_plant import MqttPlant
from hub.script.errors import ScriptError
from hub.script.loader import parse_script
from hub.script.model import Script
from hub.script.units import capabilities_for
from lecis.clock import Clock, iso_ts
from lecis.errors import CommandRejected, ErrorKind, LabedgeError
from lecis.wire import Birth

log = logging.getLogger("labedge.hub.controller")

MAX_QUEUED = 100_000  # inputs waiting for the runner; beyond, readings are recorded but not acted on
DEFERRED_SAVE_ENV = "LABEDGE_HUB_DEFERRED_SAVE_S"


class DeferredSaveInvalid(LabedgeError):
    """The environment's deferred-save delay is not a number of seconds."""


def deferred_save_s(environ: Mapping[str, str]) -> float | None:
    """How long the saves that are not write-ahead (answers, derived values) may wait, when the
    environment says (a diagnostic: the crash tests hold them to kill the hub before one); else None."""
    text = environ.get(DEFERRED_SAVE_ENV)
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 86400.0:
        raise DeferredSaveInvalid(f"environment variable {DEFERRED_SAVE_ENV}={text!r}: expected seconds "
                                  "from 0 to 86400 (unset it for the defaults)")
    return value


def new_run_id(script: Script, at: datetime) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", script.experiment).strip("-.")[:80] or "run"
    return f"{at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{slug}"


def _iso(epoch: Any) -> Any:
    if isinstance(epoch, (int, float)) and not isinstance(epoch, bool):
        return iso_ts(datetime.fromtimestamp(epoch, UTC))
    return epoch


class TeeSink:
    """The recorder's sink of the run, and the engine's notices out on `lab/hub/experiment/event`."""

    def __init__(self, inner: Sink, publish: Callable[[LogEffect], None],
                 on_session: Callable[[SessionEffect], None] | None = None) -> None:
        self.inner = inner
        self.publish = publish
        self.on_session = on_session  # the script's `session` action goes to the session log too

    def effect(self, effect: Effect, ts: float, outcome: Outcome | None) -> None:
        try:
            self.inner.effect(effect, ts, outcome)
        finally:
            if isinstance(effect, LogEffect):
                self.publish(effect)
            elif isinstance(effect, SessionEffect) and self.on_session is not None:
                self.on_session(effect)

    def script_version(self, version: int, text: str, author: str, ts: float, diff: str) -> None:
        self.inner.script_version(version, text, author, ts, diff)

    def commands_sending(self, items: Sequence[tuple[Effect, float]]) -> None:
        """Commands about to be sent, queued together when the inner sink can (the recorder's)."""
        many = getattr(self.inner, "commands_sending", None)
        if many is not None:
            many(items)
            return
        for effect, ts in items:
            self.effect(effect, ts, None)


class ControllerHost:
    """`async with ControllerHost(...)`: the runner in a task; `failed` is set if it dies."""

    def __init__(self, config: HubConfig, script: Script, plant: MqttPlant, recorder: Any,
                 topics: ExperimentTopics, clock: Clock, on_change: Callable[[], None] | None = None) -> None:
        self.config = config
        self.start_script = script
        self.plant = plant
        self.recorder = recorder
        self.topics = topics
        self.clock = clock
        self.on_change = on_change or (lambda: None)
        self.on_session: Callable[[SessionEffect], None] | None = None  # the hub's session log
        self.store = RunStore(config.data_dir / "controller")
        self.capabilities: dict[str, Birth] = {}
        self.births: dict[str, Birth] = {}
        self.runner: ControllerRunner | None = None
        self.run_id = ""
        self.resumed = False
        self.started = asyncio.Event()
        self.failed = asyncio.Event()
        self.failure: BaseException | None = None
        self._inputs: asyncio.Queue[Callable[[], Awaitable[Any]]] = asyncio.Queue(MAX_QUEUED)
        self._dropped = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def script(self) -> Script:
        return self.runner.engine.script if self.runner is not None else self.start_script

    # ---- life ---------------------------------------------------------------------------------
    async def __aenter__(self) -> ControllerHost:
        script = self.start_script
        self.capabilities = capabilities_for(Path(script.source), script.units)
        saved = self.store.load_state()  # RunStateCorrupt: a clear refusal, nothing replaced
        if saved is not None and saved["snapshot"].get("final"):
            archived = self.store.clear_state(str(saved["run_id"]))
            log.info("run %s had ended (%s); its state is kept as %s and a new run begins", saved["run_id"],
                     saved["snapshot"].get("final"), archived)
            saved = None
        self.resumed = saved is not None
        self.run_id = str(saved["run_id"]) if saved is not None else new_run_id(script, self.clock.now())
        self.recorder.open_run(self.run_id, {"experiment": script.experiment, "hub": self.config.hub,
                                             "script": script.source}, self.capabilities,
                               started_at=None if saved is None else float(saved["started_at"]))
        sink = TeeSink(self.recorder.sink(self.run_id), self._publish_log, self._session)
        delay = deferred_save_s(os.environ)
        saves = {} if delay is None else {"outcome_save_s": delay, "persist_interval_s": delay}
        self.runner = ControllerRunner.open(script, run_id=self.run_id, plant=self.plant, clock=self.clock,
                                            sink=sink, store=self.store, parse_version=self._parse_stored,
                                            on_status=lambda status: self.on_change(),
                                            author=f"hub {self.config.hub} ({script.source})", **saves)
        self._tasks.append(asyncio.create_task(self._main(), name="controller"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        for task in [*self._tasks, *self._pending]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._pending, return_exceptions=True)
        self._tasks = []

    async def _main(self) -> None:
        runner = self.runner
        assert runner is not None
        try:
            await self._units_online()
            await runner.start()
            self.started.set()
            what = "resumed" if self.resumed else "started"
            log.info("run %s %s (script version %d)", self.run_id, what, runner.engine.version)
            self._tasks.append(asyncio.create_task(self._feed(), name="controller-inputs"))
            self.on_change()
            await runner.run()
            log.info("run %s ended: %s", self.run_id, runner.engine.state)
            self.recorder.close_run(self.run_id)
            self.on_change()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noticed by the hub, which stops with a non-zero exit
            log.exception("the experiment controller failed")
            self.failure = exc
            self.failed.set()

    async def _units_online(self) -> None:
        """Until every unit of the script is ready and leased (a new run's first command needs them)."""
        waiting = sorted(self.script.units)
        while True:
            missing = [u for u in waiting if not self.plant.units[u].online]
            if not missing:
                return
            log.info("run %s waits for unit(s) %s", self.run_id, ", ".join(missing))
            await self.clock.sleep(0.1 if self.resumed else 0.5)

    async def _feed(self) -> None:
        while not self._closing:  # as well as the cancel, which a 3.11 wait_for inside a step can swallow
            step = await self._inputs.get()
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:  # one input the engine cannot take must not stop the others
                log.exception("the controller could not take an input; it goes on")

    def _queue(self, step: Callable[[], Awaitable[Any]]) -> None:
        if not self.started.is_set():
            return  # before the start: recorded only (the engine has no run yet)
        try:
            self._inputs.put_nowait(step)
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped == 1:
                log.error("the controller falls behind its inputs; readings are recorded but not acted on")

    # ---- inputs (synchronous, from the link) --------------------------------------------------
    def reading(self, reading: Reading) -> None:
        runner = self.runner
        if runner is not None:
            self._queue(lambda: runner.reading(reading))

    def event(self, unit: str, module: str | None, code: str) -> None:
        runner = self.runner
        if runner is not None:
            self._queue(lambda: runner.event(unit, module, code))

    def unit_online(self, unit: str, online: bool, why: str) -> None:
        level, code = ("info", "unit_back") if online else ("alarm", "unit_lost")
        message = f"unit {unit} is {'online: the hub holds its lease' if online else 'lost'}"
        message += f" ({why})" if why else ""
        (log.info if online else log.error)("%s", message)
        self._record(LogEffect(level, code, message, "hub", {"unit": unit}))  # type: ignore[arg-type]
        runner = self.runner
        if runner is not None:
            self._queue(lambda: runner.unit_online(unit, online))

    def birth_seen(self, births: Mapping[str, Birth]) -> None:
        """A unit's real capabilities: is the running script still right for them?"""
        self.births = {u: b for u, b in births.items() if u in self.script.units}
        script = self.script
        try:
            parse_script(script.text, script.source, {**self.capabilities, **self.births})
        except ScriptError as exc:
            message = (f"the running script does not fit what the units offer ({len(exc.problems)} "
                       "problem(s)): " + "; ".join(str(p) for p in exc.problems[:5]))
            log.error("%s", message)
            self._record(LogEffect("alarm", "script_birth_mismatch", message, "hub",
                                   {"problems": [str(p) for p in exc.problems]}))

    def _record(self, effect: LogEffect) -> None:
        if self.run_id:
            try:
                self.recorder.sink(self.run_id).effect(effect, self.clock.now().timestamp(), None)
            except Exception:  # recording must never stop control
                log.exception("recording %s failed", effect.code)
        self._publish_log(effect)

    def _session(self, effect: SessionEffect) -> None:
        if self.on_session is not None:
            self.on_session(effect)

    def _publish_log(self, effect: LogEffect) -> None:
        coroutine = self.topics.event(effect.level, effect.code, effect.message, effect.origin, effect.data)
        task = asyncio.get_running_loop().create_task(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _parse_stored(self, text: str) -> Script:
        return parse_script(text, self.start_script.source, {**self.capabilities, **self.births})

    # ---- the Experiment of hub commands -------------------------------------------------------
    def status(self) -> dict[str, Any]:
        runner = self.runner
        units = self.plant.status()
        if runner is None:
            return {"state": "starting", "units": units}
        now = self.clock.now().timestamp()
        raw = runner.engine.status(now)
        state = raw["state"]
        if not self.started.is_set():
            state = "waiting_for_units"
        return {
            "state": state, "run_id": raw["run_id"], "experiment": raw["experiment"],
            "script_version": raw["version"], "started_at": _iso(raw["started_at"]),
            "elapsed_s": round(raw["elapsed"], 3),
            "next_due": [{**d, "due": _iso(d["due"])} for d in raw["next_due"]],
            "loops": raw["loops"], "guards": raw["holding"], "variables": raw["variables"],
            "stale": raw["stale"], "fired": raw["fired"], "units": units, "resumed": self.resumed,
        }

    def _runner(self, what: str) -> ControllerRunner:
        runner = self.runner
        if runner is None or not self.started.is_set():
            missing = [u for u in sorted(self.script.units) if not self.plant.units[u].online]
            raise CommandRejected(ErrorKind.STATE, f"cannot {what}: the experiment has not started; it waits "
                                                   f"for unit(s) {', '.join(missing) or '...'}")
        if runner.engine.final:
            raise CommandRejected(ErrorKind.STATE, f"cannot {what}: the run has {runner.engine.final}")
        return runner

    async def pause(self) -> dict[str, Any]:
        runner = self._runner("pause")
        if runner.engine.paused:
            raise CommandRejected(ErrorKind.STATE, "the experiment is already paused")
        await runner.pause()
        return self.status()

    async def resume(self) -> dict[str, Any]:
        runner = self._runner("resume")
        if not runner.engine.paused:
            raise CommandRejected(ErrorKind.STATE, f"the experiment is {runner.engine.state}, not paused")
        await runner.resume()
        return self.status()

    async def stop(self, reason: str) -> dict[str, Any]:
        await self._runner("stop").stop(reason)
        return self.status()

    async def apply(self, text: str, author: str, source: str) -> dict[str, Any]:
        runner = self._runner("apply a new script version")
        script = parse_script(text, source, {**self.capabilities, **self.births})  # ScriptError: rejected
        if sorted(script.units) != sorted(self.script.units):
            units = ", ".join(sorted(self.script.units))
            raise CommandRejected(ErrorKind.VALIDATION, f"a new version must run on the same units "
                                                        f"({units}); stop this run and start another for "
                                                        "other units", "text")
        result = await runner.apply_script(script, author)
        self.on_change()
        return result

    def versions(self) -> list[dict[str, Any]]:
        return [{**v, "ts": _iso(v.get("ts"))} for v in self.store.versions()]

