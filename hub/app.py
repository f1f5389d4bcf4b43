"""The hub process in one lifespan: data folder lock, recorder, MQTT link, plant, controller, hub commands.

`async with Hub(config) as hub:` opens them in that order and closes them in
reverse. Nothing starts when the script is invalid (`check_start_script`
raises ScriptError with every problem) or another hub holds the data folder
(HubDataDirBusy names it). Readings go to the recorder first and then to the
controller; a unit's `$birth` re-checks the running script against what the
unit really offers (until then the script was checked against the unit files
it names).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from hub.config import HubConfig
from hub.controller.effects import Reading
from hub.controller_host import ControllerHost
from hub.experiment_topics import ExperimentTopics
from hub.hub_commands import HubCommands
from hub.link import HubLink, LinkHandlers
from hub.mqtt_plant import MqttPlant
from hub.recorder.intake import DataRecord, decode_bytes
from hub.script.errors import ScriptError
from hub.script.model import Script
from hub.sessions.model import SessionRefused, SessionSource, SessionUploads
from lecis.clock import Clock, SystemClock, parse_ts
from lecis.errors import LabedgeError
from lecis.topics import Topics
from lecis.wire import Birth, Button, Data, Event, ModuleState, UnitState, from_bytes

log = logging.getLogger("labedge.hub")

LOCK_NAME = "hub.lock"
STATUS_PERIOD_S = 1.0  # the experiment state is looked at this often and published when it changed


class HubDataDirBusy(LabedgeError):
    """Another hub process uses the data folder."""


def check_start_script(config: HubConfig) -> Script | None:
    """The script of hub.yaml checked against the unit files it names; ScriptError with every problem."""
    if config.script is None:
        return None
    from hub.script.loader import load_script

    return load_script(config.script)


def _lock(config: HubConfig) -> Any:
    from edge.data_lock import LockHeld, LockUnusable, PidLock

    lock = PidLock(config.data_dir / LOCK_NAME, {"hub": config.hub, "config": config.source})
    try:
        lock.acquire()
    except LockHeld as exc:
        raise HubDataDirBusy(f"the data folder {config.data_dir} is in use by another hub, {exc.holder}; "
                             "stop it first, or give this hub its own data_dir") from None
    except LockUnusable as exc:
        raise LockUnusable(f"cannot use the data folder {config.data_dir}: {exc}; check data_dir in "
                           f"{config.source} and its permissions") from None
    return lock


class Hub:
    """One hub: `async with Hub(config) as hub: await hub.wait(stop_event)`."""

    def __init__(self, config: HubConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.topics = Topics(config.topic_root)
        self.script: Script | None = None
        self.recorder: Any = None
        self.plant: MqttPlant | None = None
        self.controller: ControllerHost | None = None
        self.births: dict[str, Birth] = {}
        self.web: Any = None  # hub.web.server.WebServer when hub.yaml has web:
        self.sessions: Any = None  # hub.sessions.service.SessionService, opened in the lifespan
        self._presses: dict[tuple[str, str], str] = {}  # (unit, button) -> the last press's ts
        self.handlers = LinkHandlers(
            data=self._on_data, event=self._on_event, module_state=self._on_module_state,
            unit_state=self._on_unit_state, birth=self._on_birth, reply=self._on_reply,
            hub_command=self._on_hub_command, data_bytes=self._on_data_bytes, button=self._on_button)
        self.link = HubLink(config, self.handlers, self.clock)
        self.experiment = ExperimentTopics(self._publish, self.topics, config.hub, self.clock)
        self.commands = HubCommands(None, self._publish_reply, self.clock, counters=self.counters)
        self._stack: contextlib.AsyncExitStack | None = None
        self._closing = False
        self._changed = asyncio.Event()  # the experiment's state may have changed: publish it now
        self._tasks: list[asyncio.Task[None]] = []
        self.failed: BaseException | None = None

    # ---- life ---------------------------------------------------------------------------------
    async def __aenter__(self) -> Hub:
        self.script = check_start_script(self.config)  # before anything: an invalid script starts nothing
        async with contextlib.AsyncExitStack() as stack:
            lock = _lock(self.config)
            stack.callback(lock.release)
            from hub.recorder import Recorder

            self.recorder = await stack.enter_async_context(
                Recorder(self.config.data_dir, self.clock, on_alarm=self._recorder_alarm))
            await self._open_sessions(stack)
            if self.script is not None:
                # Built before the link connects: the retained $state and $birth arrive at once.
                self.plant = MqttPlant(
                    self.link.session, self.config.hub, self.script.units, topics=self.topics,
                    clock=self.clock, lease_ttl_s=self.config.lease_ttl_s,
                    timeout_s=self.config.command_timeout_s, offline_wait_s=self.config.unit_wait_s,
                    on_presence=self._presence, connected=self.link.connected)
            self.handlers.connected.append(self.experiment.republish)
            if self.config.web is not None:  # before the link: the page sees the retained states arrive
                from hub.web.server import WebServer

                self.web = await stack.enter_async_context(WebServer(self, self.config))
            await stack.enter_async_context(self.link)
            await self._publish_sessions(stack)
            if self.plant is not None and self.script is not None:
                await stack.enter_async_context(self.plant)
                controller = ControllerHost(
                    self.config, self.script, self.plant, self.recorder, self.experiment, self.clock,
                    self._changed.set)
                controller.on_session = self._on_script_session
                self.controller = await stack.enter_async_context(controller)
                self.commands.experiment = self.controller
            stack.push_async_callback(self.commands.close)
            self._tasks.append(asyncio.create_task(self._publish_status(), name="experiment-state"))
            stack.push_async_callback(self._stop_tasks)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def _stop_tasks(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def wait(self, stop: asyncio.Event) -> None:
        """Until `stop` is set, the controller ends beyond repair, or another hub has our id."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.link.fatal.wait())]
        if self.controller is not None:
            waiters.append(asyncio.ensure_future(self.controller.failed.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if self.link.duplicate is not None:
            await self._duplicate_alarm(self.link.duplicate)

    async def _duplicate_alarm(self, message: str) -> None:
        """Best effort: the other hub takes the session back within a second."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3.0):
                await self.link.connected.wait()
                await self.experiment.event("alarm", "duplicate_hub_id", message, "hub")

    # ---- sessions (docs/sessions.md) ----------------------------------------------------------
    async def _open_sessions(self, stack: contextlib.AsyncExitStack) -> None:
        """The session log (SessionLogCorrupt: the hub does not start) and its uploads."""
        from hub.sessions.commands import SessionCommands
        from hub.sessions.log import LOG_NAME
        from hub.sessions.service import SessionService

        service = SessionService(self.config.data_dir / LOG_NAME, self.config.data_dir, self.clock,
                                 self.recorder)
        uploads = _uploads(self.config, self.clock, service.upload_progress, service.upload_file)
        if uploads is not None:
            if isinstance(uploads, contextlib.AbstractAsyncContextManager):  # closed after the log
                await stack.enter_async_context(uploads)
            service.uploads = uploads
        service.known_units = self._known_units
        self.sessions = await stack.enter_async_context(service)
        self.commands.session_handler = SessionCommands(service, self._known_units)

    async def _publish_sessions(self, stack: contextlib.AsyncExitStack) -> None:
        from hub.sessions.publisher import SessionPublisher

        publisher = await stack.enter_async_context(
            SessionPublisher(self.sessions, self._publish, self.topics, self.clock,
                             known_units=self._known_units))
        self.handlers.connected.append(publisher.republish)
        self._session_publisher = publisher

    def _known_units(self) -> set[str]:
        """Units a session may be for: heard from ($birth), or named by the script or hub.yaml's watch:."""
        units = set(self.births)
        if self.script is not None:
            units |= set(self.script.units)
        return units | set(self.config.watch)

    def _on_button(self, unit: str, button: Button) -> None:
        if button.action != "pressed":  # a held stop is the unit's own ESTOP: it starts or stops nothing
            log.info("unit %s: %s button %s (the unit's own ESTOP; no session change)", unit, button.button,
                     button.action)
            return
        if self._presses.get((unit, button.button)) == button.ts:  # QoS 1 may deliver one twice
            log.info("unit %s: %s press of %s seen again; carried out once", unit, button.button, button.ts)
            return
        self._presses[(unit, button.button)] = button.ts
        self._spawn(self._session_input(unit, button.button, SessionSource.BUTTON, pressed_at=button.ts))

    def _on_script_session(self, effect: Any) -> None:
        """The script's `session` action (a SessionEffect)."""
        name = effect.name or (self.script.experiment if self.script is not None else None)
        self._spawn(self._session_input(effect.unit, effect.action, SessionSource.SCRIPT, name))

    async def _session_input(self, unit: str, action: str, source: SessionSource,
                             experiment: str | None = None, pressed_at: str | None = None) -> None:
        """A start or stop from a button or the script: a refusal is logged, raised as an event, blinked."""
        if self.sessions is None:
            return
        try:
            if action == "start":
                await self.sessions.start(unit, source=source, experiment=experiment, pressed_at=pressed_at)
            else:
                await self.sessions.stop(unit, source=source, pressed_at=pressed_at)
        except (SessionRefused, LabedgeError, OSError) as exc:  # refused, invalid, or not storable (disk)
            log.warning("session %s from the %s of %s refused: %s", action, source.value, unit, exc)
            if source is SessionSource.BUTTON:
                await self._refusal_blink(unit)
            with contextlib.suppress(Exception):
                await self.experiment.event("warning", "session_refused", str(exc), source.value,
                                            {"unit": unit, "action": action})

    async def _refusal_blink(self, unit: str) -> None:
        """The unit's status LED shows the refusal (unit command `led.refuse`, no lease needed)."""
        import uuid

        from lecis.commands import Command
        from lecis.wire import encode

        command = Command(f"hub-refuse-{uuid.uuid4().hex[:12]}", "led.refuse", {})
        try:
            await self.link.publish(self.topics.unit_cmd(unit), encode(command))
        except Exception as exc:  # the refusal is logged and published anyway
            log.warning("unit %s: the refusal blink was not sent (%s)", unit, exc)

    # ---- outgoing -----------------------------------------------------------------------------
    async def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        await self.link.publish(topic, payload, retain)

    async def _publish_reply(self, payload: bytes) -> None:
        await self.link.publish(self.topics.hub_reply(), payload)

    def status(self) -> dict[str, Any]:
        if self.controller is not None:
            status: dict[str, Any] = dict(self.controller.status())
        else:
            status = {"state": "idle"}
        return {**status, **self.counters()}

    def counters(self) -> dict[str, int]:
        """What the hub counts beside the experiment: in its state and in every command's reply."""
        bad = sum(v for k, v in self.link.stats.items() if k.startswith("bad."))
        return {"bad_messages": bad, "readings_lost": self.readings_lost()}

    def readings_lost(self) -> int:
        try:
            stats = self.recorder.stats() if self.recorder is not None else {}
        except LabedgeError:
            return 0
        return _total(stats, "readings_lost")

    async def _publish_status(self) -> None:
        while not self._closing:  # as well as the cancel (a 3.11 wait_for in a publish can swallow one)
            self._changed.clear()
            try:
                await self.experiment.state(self.status())
            except Exception:  # the state topic is a view; it must not end the hub
                log.exception("publishing the experiment state failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STATUS_PERIOD_S):  # not wait_for: it can swallow a cancel
                    await self._changed.wait()

    # ---- incoming (never raise: the link counts what does) --------------------------------------
    def _on_data(self, unit: str, module: str, data: Data, payload: dict[str, Any], at: float) -> None:
        self.recorder.ingest(unit, module, "data", payload, at)
        if self.controller is not None:
            for reading in data.readings:
                ts = parse_ts(reading.ts).timestamp()
                self.controller.reading(Reading(unit, module, ts, reading.values, data.seq))

    def _on_data_bytes(self, unit: str, module: str, payload: bytes, at: float) -> None:
        """A data message decoded once for the recorder and the controller (the recorder's fast path)."""
        record = decode_bytes(unit, module, "data", payload, at)
        if not isinstance(record, DataRecord):  # the codec names what is wrong; the link counts it
            value = from_bytes(payload)
            self._on_data(unit, module, Data.from_json(value), value, at)
            return
        self.recorder.ingest_record(record)
        if self.controller is not None:
            for point in record.points:
                self.controller.reading(Reading(unit, module, point.ts, point.values, record.seq))

    def _on_event(self, unit: str, module: str, event: Event, payload: dict[str, Any], at: float) -> None:
        self.recorder.ingest(unit, module, "event", payload, at)
        if self.controller is not None:
            self.controller.event(unit, module, event.code)

    def _on_module_state(self, unit: str, module: str, state: ModuleState, payload: dict[str, Any],
                         at: float) -> None:
        self.recorder.ingest(unit, module, "state", payload, at)

    def _on_unit_state(self, unit: str, state: UnitState) -> None:
        self.recorder.ingest(unit, "$state", "unit_state", state.to_json(), self.clock.now().timestamp())
        if self.plant is not None:
            self.plant.on_unit_state(unit, state)

    def _on_birth(self, unit: str, birth: Birth) -> None:
        self.births[unit] = birth
        if getattr(self, "_session_publisher", None) is not None:  # a stale retained session is cleared
            self._session_publisher.unit_seen(unit)
        self.recorder.ingest(unit, "$birth", "birth", birth.to_json(), self.clock.now().timestamp())
        if self.plant is not None:
            self.plant.on_birth(unit, birth)
        if self.controller is not None and unit in self.controller.script.units:
            self.controller.birth_seen(dict(self.births))

    def _on_reply(self, topic: str, payload: bytes) -> None:
        if self.plant is not None:
            self.plant.feed_reply(topic, payload)

    def _on_hub_command(self, payload: bytes) -> None:
        self.commands.feed(payload)

    def _presence(self, unit: str, online: bool, why: str) -> None:
        if self.controller is not None:
            self.controller.unit_online(unit, online, why)

    def _recorder_alarm(self, code: str, message: str) -> None:
        log.error("recorder: %s: %s", code, message)
        self._spawn(self.experiment.event("alarm", code, message, "recorder"))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)


def _uploads(config: HubConfig, clock: Clock, on_progress: Any, on_file: Any) -> SessionUploads | None:
    """The uploader when hub.yaml has `storage:`; None (the log's no-op uploads) without a bucket."""
    if config.storage is None:
        return None
    from hub.upload.uploader import Uploader

    uploads: SessionUploads = Uploader(config, config.data_dir, clock, on_progress, on_file)
    return uploads


def _total(stats: Mapping[str, Any], key: str) -> int:
    """Sum of `key` anywhere in the recorder's nested stats."""
    total = 0
    for name, value in stats.items():
        if name == key and isinstance(value, int) and not isinstance(value, bool):
            total += value
        elif isinstance(value, Mapping):
            total += _total(value, key)
    return total




__all__ = ["Hub", "HubDataDirBusy", "ScriptError", "check_start_script"]
