"""`Recorder`: the hub's database server (docs/recorder.md).

    async with Recorder(data_dir, clock, on_alarm=alarm) as rec:
        rec.ingest("bench-1", "ph1", "data", payload, received_at)
        rec.open_run("run-42", {"experiment": "respirometry"}, births)
        sink = rec.sink("run-42")            # the controller records its effects here
        rec.history("bench-1", "ph1", "ph", t0, t1, 1000)

`ingest` never raises on what a unit sent: a bad payload is counted and
logged. Writing happens on one thread, in batches (hub.recorder.writer);
queries read the database on the caller's thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from edge.data_lock import LockHeld, PidLock
from hub.controller.effects import CommandEffect, Effect, Outcome
from hub.recorder.chunks import FileOps
from hub.recorder.errors import RecorderBusy, RecorderClosed, RunIdInvalid
from hub.recorder.intake import DataRecord, EventRecord, Record, decode, decode_bytes
from hub.recorder.ops import CloseRun, EffectOp, Flush, OpenRun, RecorderEvent, VersionOp
from hub.recorder.query import Bucket, Reader
from hub.recorder.runfiles import RUN_ID
from hub.recorder.writer import Op, Writer
from lecis.clock import Clock
from lecis.topics import UNIT_ID
from lecis.version import software_version
from lecis.wire import Birth

log = logging.getLogger("labedge.hub.recorder")
LOCK_NAME = "recorder.lock"
MAX_BACKLOG = 500_000  # messages held in memory while the disk is full (~0.5 GB at worst)


class RunSink:
    """The controller's record of one run (hub.controller.effects.Sink)."""

    def __init__(self, recorder: Recorder, run_id: str) -> None:
        self._recorder, self.run_id = recorder, run_id

    def effect(self, effect: Effect, ts: float, outcome: Outcome | None) -> None:
        """Record one effect; a command about to be sent is written before this returns (see below)."""
        sending = isinstance(effect, CommandEffect) and outcome is None
        self._recorder._submit(EffectOp(self.run_id, effect, ts, outcome), urgent=sending)
        if sending and self._recorder.write_ahead_s > 0:
            # Write-ahead, as the controller's own state: after a kill -9 right after the send, the
            # command is in commands.jsonl although its unit ran it. Bounded, and skipped while the
            # disk refuses writes: recording must never hold control up for long.
            self._recorder._wait_written(self._recorder.write_ahead_s)

    def commands_sending(self, items: Sequence[tuple[Effect, float]]) -> None:
        """Commands about to be sent, queued to be written at once (one wake of the writer for them
        all), not waited for: the controller's saved state is their write-ahead (docs/recorder.md)."""
        for effect, ts in items:
            self._recorder._submit(EffectOp(self.run_id, effect, ts, None), urgent=True)

    def script_version(self, version: int, text: str, author: str, ts: float, diff: str) -> None:
        self._recorder._submit(VersionOp(self.run_id, version, text, author, ts, diff))


class Recorder:
    """Every unit message into SQLite and the run/session files; see the module docstring."""

    def __init__(
        self,
        data_dir: Path,
        clock: Clock,
        on_alarm: Callable[[str, str], None] | None = None,
        *,
        on_event: Callable[[RecorderEvent], None] | None = None,
        files: FileOps | None = None,
        batch_s: float = 0.05,
        max_backlog: int = MAX_BACKLOG,
        write_ahead_s: float = 0.5,
    ) -> None:
        """`write_ahead_s`: how long `sink(...).effect` may wait for a command's record (0: never)."""
        self.data_dir, self.clock = Path(data_dir), clock
        self.on_alarm, self.on_event = on_alarm, on_event
        self._files, self._batch_s, self.max_backlog = files, batch_s, max_backlog
        self.write_ahead_s = write_ahead_s
        self._write_ahead_late = False
        self._writer: Writer | None = None
        self._reader: Reader | None = None
        self._lock: PidLock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0
        self._dropping = False

    # -- life ------------------------------------------------------------------------------------

    async def __aenter__(self) -> Recorder:
        self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.close)

    def open(self) -> None:
        """Lock the data folder (RecorderBusy if another recorder has it), open the database, start."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = PidLock(self.data_dir / LOCK_NAME, {"recorder": str(self.data_dir)})
        try:
            lock.acquire()
        except LockHeld as exc:
            raise RecorderBusy(
                f"the recorder's data folder {self.data_dir} is in use by another recorder, "
                f"{exc.holder}; two writers would corrupt it. Stop that hub first, or give "
                "this one its own data_dir"
            ) from None
        self._lock = lock
        try:
            writer = Writer(
                self.data_dir,
                self.clock,
                self._notify,
                software_version(),
                files=self._files,
                batch_s=self._batch_s,
            )
            writer.open()
        except BaseException:
            lock.release()
            self._lock = None
            raise
        self._writer = writer
        self._reader = Reader(self.data_dir / "recorder.sqlite3")

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (waiting up to `timeout` for a full disk), then close."""
        writer, self._writer = self._writer, None
        if writer is not None:
            left = writer.stop(timeout)
            if left:
                log.error("recorder closed with %d messages it could not write (%s)", left, writer.failing)
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- what comes in ---------------------------------------------------------------------------

    def ingest(self, unit: str, module: str, kind: str, payload: Any, received_at: float) -> None:
        """One message from a unit (`kind` data, event, state, birth, unit_state); never raises on content."""
        writer = self._require()
        if self._full(writer) and kind in ("data", "event"):
            self._drop(writer)  # its seq becomes a gap once the disk is back: counted as lost
            return
        writer.submit(decode(unit, module, kind, payload, received_at))

    def ingest_raw(self, unit: str, module: str, kind: str, payload: bytes, received_at: float) -> None:
        """`ingest` of the raw MQTT payload, checked and decoded later on the writer thread.

        The cheapest way in when nothing else needs the content: the caller's thread (the MQTT
        client's) only queues. A bad payload is counted and logged as with `ingest`.
        """
        writer = self._require()
        if self._full(writer) and kind in ("data", "event"):
            self._drop(writer)
            return
        writer.submit((unit, module, kind, payload, received_at))

    def ingest_bytes(self, unit: str, module: str, kind: str, payload: bytes, received_at: float) -> Record:
        """`ingest` of the raw MQTT payload, parsed here (fast for data messages); returns the record.

        The record (a DataRecord's `points` hold each reading's epoch ts and values) lets the
        caller feed the controller from the same decode; a `Bad` record says what was wrong.
        """
        writer = self._require()
        record = decode_bytes(unit, module, kind, payload, received_at)
        if self._full(writer) and kind in ("data", "event"):
            self._drop(writer)
        else:
            writer.submit(record)
        return record

    def ingest_record(self, record: Record) -> None:
        """Queue a record made by `hub.recorder.intake.decode_bytes` or `decode` (the caller decoded it)."""
        writer = self._require()
        if self._full(writer) and isinstance(record, (DataRecord, EventRecord)):
            self._drop(writer)
        else:
            writer.submit(record)

    def open_run(
        self,
        run_id: str,
        meta: Mapping[str, Any],
        births: Mapping[str, Birth],
        started_at: float | None = None,
    ) -> None:
        """Start (or, after a hub restart, continue) the files of a run of the units in `births`."""
        self._check_id(run_id, "run")
        units = frozenset(births) if births else None
        self._submit(OpenRun(run_id, "run", units, dict(meta), dict(births), self._started(started_at)))

    def close_run(self, run_id: str) -> None:
        self._submit(CloseRun(run_id, self.clock.now().timestamp()))

    def open_session(
        self, session_id: str, unit: str, meta: Mapping[str, Any], started_at: float | None = None
    ) -> None:
        """Start the files of one unit's session (issue 8); the unit's last `$birth` gives the schema."""
        self._check_id(session_id, "session")
        if not isinstance(unit, str) or UNIT_ID.match(unit) is None:
            raise RunIdInvalid(f"session {session_id}: {unit!r} is not a unit id")
        self._submit(
            OpenRun(session_id, "session", frozenset({unit}), dict(meta), {}, self._started(started_at))
        )

    def close_session(self, session_id: str) -> None:
        self._submit(CloseRun(session_id, self.clock.now().timestamp()))

    def sink(self, run_id: str) -> RunSink:
        return RunSink(self, run_id)

    async def flush(self) -> None:
        """Return once everything ingested before the call is committed and in the files."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def resolve() -> None:
            loop.call_soon_threadsafe(lambda: None if done.done() else done.set_result(None))

        self._submit(Flush(resolve))
        await done

    def flush_sync(self, timeout: float | None = None) -> bool:
        """`flush` for a thread without an event loop; False on timeout."""
        event = threading.Event()
        self._submit(Flush(event.set))
        return event.wait(timeout)

    # -- what anyone can read --------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters per unit and module (received, stored, duplicates, gaps, readings_lost...) and totals."""
        writer = self._require()
        units: dict[str, dict[str, Any]] = {}
        totals = dict.fromkeys(
            ("received", "stored", "duplicates", "gaps", "readings_lost", "recovered", "bad"), 0
        )
        for (unit, module), counts in sorted(writer.published.items()):
            units.setdefault(unit, {})[module] = dict(counts)
            for key in totals:
                totals[key] += counts[key]
        totals["bad"] += writer.bad_unattributed
        return {
            "units": units,
            "totals": totals,
            "unattributed_bad": writer.bad_unattributed,
            "dropped_backlog_full": self.dropped,
            "backlog": writer.backlog(),
            "failing": writer.failing,
        }

    def history(
        self, unit: str, module: str, reading: str, start: float, end: float, points: int
    ) -> list[Bucket]:
        return self._read().history(unit, module, reading, start, end, points)

    def latest(self, unit: str, module: str) -> dict[str, Any] | None:
        return self._read().latest(unit, module)

    def state(self, unit: str, module: str) -> dict[str, Any] | None:
        """The last retained state stored for a module (or `$state` / `$birth` of the unit)."""
        return self._read().state(unit, module)

    def events(self, **filters: Any) -> list[dict[str, Any]]:
        """Events filtered by unit, module, code, level, source, run_id, start, end; `limit` (1000)."""
        return self._read().events(**filters)

    def seqs(self, unit: str, module: str) -> list[int]:
        return self._read().seqs(unit, module)

    # -- inside ----------------------------------------------------------------------------------

    def _require(self) -> Writer:
        writer = self._writer
        if writer is None:
            raise RecorderClosed("the recorder is not open: use it as `async with Recorder(...)`")
        if writer.died is not None:
            raise RecorderClosed(
                f"the recorder's writer stopped: {writer.died!r}; see the log"
            ) from writer.died
        return writer

    def _read(self) -> Reader:
        self._require()
        assert self._reader is not None
        return self._reader

    def _submit(self, op: Op, urgent: bool = False) -> None:
        self._require().submit(op, urgent)

    def _wait_written(self, timeout: float) -> None:
        writer = self._require()
        if writer.failing:
            return
        written = threading.Event()
        writer.submit(Flush(written.set), urgent=True)
        if not written.wait(timeout) and not self._write_ahead_late:
            self._write_ahead_late = True
            log.warning("a command record took over %.1f s to write; the command goes out anyway", timeout)

    def _started(self, started_at: float | None) -> float:
        return self.clock.now().timestamp() if started_at is None else started_at

    def _check_id(self, run_id: str, what: str) -> None:
        if not isinstance(run_id, str) or RUN_ID.match(run_id) is None or ".." in run_id:
            raise RunIdInvalid(
                f"{what} id {run_id!r} cannot name a folder: use letters, digits, '.', '_' and "
                "'-', starting with a letter or digit, up to 128 characters"
            )
        row = self._read().run_row(run_id)
        if row is not None and row[1] is not None:
            raise RunIdInvalid(
                f"{what} {run_id} already ended; its files are closed for good: choose a new id"
            )

    def _full(self, writer: Writer) -> bool:
        """True while the backlog is at its limit; an episode of drops ends once it is down to half."""
        backlog = writer.backlog()
        if backlog >= self.max_backlog:
            return True
        if self._dropping and backlog < self.max_backlog // 2:
            self._dropping = False  # the next full backlog is a new episode, with its own alarm
            log.warning("the recorder's backlog is down to %d messages; readings are stored again", backlog)
        return False

    def _drop(self, writer: Writer) -> None:
        self.dropped += 1
        if not self._dropping:
            self._dropping = True
            if writer.failing:
                why, until = f"the disk refuses writes ({writer.failing})", "the disk takes writes again"
            else:
                why = "messages arrive faster than the disk stores them"
                until = "the writer catches up (to half the backlog)"
            message = (
                f"the recorder holds {writer.backlog()} messages it has not written yet: {why}; newer "
                f"readings are dropped (counted as readings lost) until {until}"
            )
            log.error("%s", message)
            self._notify(
                RecorderEvent("alarm", "recorder_backlog_full", message, self.clock.now().timestamp())
            )

    def _notify(self, event: RecorderEvent) -> None:
        """From the writer thread: hand the event to the loop's callbacks."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                if threading.current_thread() is threading.main_thread() and loop.is_running():
                    self._deliver(event)
                else:
                    loop.call_soon_threadsafe(self._deliver, event)
                return
            except RuntimeError:
                pass
        self._deliver(event)

    def _deliver(self, event: RecorderEvent) -> None:
        try:
            if self.on_event is not None:
                self.on_event(event)
            if event.level == "alarm" and self.on_alarm is not None:
                self.on_alarm(event.code, event.message)
        except Exception:
            log.exception("recorder event callback failed")
