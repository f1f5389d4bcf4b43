"""The recorder's one writer thread: batches of records into SQLite and the run files.

Ops arrive on a deque from the event loop (or the MQTT client's thread): records,
raw messages (decoded here as they are taken, so the caller only queues), runs,
effects, flushes. Every `batch_s` (or `max_batch` ops) the writer takes what is
there and writes it as one transaction: seq checks (hub.recorder.seqs), the rows
and file lines of each record (hub.recorder.records) and op (hub.recorder.runops),
the run files, then the commit. If anything fails (a full disk), the database rolls back,
the files are cut back to where they were, the counters are restored, and
the same ops are tried again every `retry_s` with what arrived meanwhile
queued behind them; an alarm says so once per episode. So no partial row or
line exists, and nothing queued is lost while memory holds it.
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub.recorder.batch import Batch
from hub.recorder.chunks import FileOps
from hub.recorder.intake import BIRTH_KEY, Bad, DataRecord, EventRecord, StateRecord, decode_bytes
from hub.recorder.ops import CloseRun, EffectOp, Flush, OpenRun, RecorderEvent, VersionOp
from hub.recorder.records import RecordOps
from hub.recorder.runfiles import RunFiles
from hub.recorder.runops import RunOps
from hub.recorder.store import Store, Stream
from hub.recorder.syncer import Syncer
from lecis.clock import Clock
from lecis.wire import Birth

log = logging.getLogger("labedge.hub.recorder")
#: A message as it came off the wire, decoded on the writer thread: unit, module, kind, payload, received_at.
RawMessage = tuple[str, str, str, bytes, float]
Op = (
    DataRecord | EventRecord | StateRecord | Bad | OpenRun | CloseRun | EffectOp | VersionOp | Flush
    | RawMessage
)
Notify = Callable[[RecorderEvent], None]


class Writer(RecordOps, RunOps):
    def __init__(
        self,
        data_dir: Path,
        clock: Clock,
        notify: Notify,
        software_version: str,
        *,
        files: FileOps | None = None,
        batch_s: float = 0.05,
        max_batch: int = 5000,
        retry_s: float = 1.0,
        sync_s: float = 1.0,
        meta_s: float = 5.0,
    ) -> None:
        self.data_dir, self.clock, self.notify = data_dir, clock, notify
        self.software_version = software_version
        self.files = files or FileOps()
        self.syncer = Syncer(self.files)
        self.batch_s, self.max_batch, self.retry_s = batch_s, max_batch, retry_s
        self.sync_s, self.meta_s = sync_s, meta_s
        self.queue: deque[Op] = deque()
        self.wake = threading.Event()
        self.hurry = threading.Event()
        self.pending: list[Op] = []  # taken from the queue, raw messages decoded
        self._routes: dict[tuple[str, str], tuple[Stream, list[RunFiles]]] = {}
        self.failing: str | None = None  # the error of the episode under way
        self.published: dict[tuple[str, str], dict[str, Any]] = {}
        self.bad_unattributed = 0
        self.runs: dict[str, RunFiles] = {}
        self.births: dict[str, Birth] = {}
        self._deferred: list[RecorderEvent] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.died: BaseException | None = None

    # -- life ------------------------------------------------------------------------------------

    def open(self) -> None:
        """Open the database and every run left open (a crash); on the caller's thread."""
        self.store = Store(self.data_dir / "recorder.sqlite3")
        self.streams = self.store.load_streams()
        self._publish()
        for unit, payload in self.store.db.execute(
            "SELECT unit, payload FROM states WHERE module=?", (BIRTH_KEY,)
        ):
            self.births[unit] = Birth.from_json(json.loads(payload))
        rows = self.store.db.execute(
            "SELECT id, kind, units, meta, births, started_at FROM runs WHERE ended_at IS NULL"
        ).fetchall()
        for run_id, kind, units, meta, births, started_at in rows:
            decoded = {u: Birth.from_json(b) for u, b in json.loads(births).items()}
            self._open_files(
                run_id,
                kind,
                None if units is None else frozenset(json.loads(units)),
                json.loads(meta),
                decoded,
                started_at,
            )
        self._thread = threading.Thread(target=self._main, name="recorder-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> int:
        """Write what is queued (for up to `timeout` while failing), close; returns ops left unwritten."""
        self._stopping = True
        self._stop_deadline = time.monotonic() + timeout
        self.wake.set()
        if self._thread is not None:
            self._thread.join()
        self.syncer.stop()
        left = len(self.pending) + len(self.queue)
        for run in self.runs.values():
            run.close()
        self.store.close()
        return left

    def submit(self, op: Op, urgent: bool = False) -> None:
        """Queue `op`; `urgent` writes it without waiting for a batch to gather."""
        self.queue.append(op)
        if urgent:
            self.hurry.set()
        if not self.wake.is_set():
            self.wake.set()

    def backlog(self) -> int:
        return len(self.queue) + len(self.pending)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop --------------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug: noticed by the recorder, which refuses further ingest
            log.exception("recorder writer stopped")
            self.died = exc
            self._emit(RecorderEvent("alarm", "recorder_stopped", f"the recorder stopped writing ({exc!r}); "
                                     "readings are no longer stored: restart the hub and report the log",
                                     time.time()))

    def _loop(self) -> None:
        next_sync = time.monotonic() + self.sync_s
        next_meta = time.monotonic() + self.meta_s
        retry_at = 0.0
        while True:
            self.wake.wait(timeout=0.25)
            if self.queue and not self._stopping and len(self.queue) < self.max_batch and not self.failing:
                self.hurry.wait(self.batch_s)  # gather a batch, unless something is urgent
            self.wake.clear()
            self.hurry.clear()
            self._take()
            now = time.monotonic()
            if self.pending and (not self.failing or now >= retry_at):
                if not self._write_pending():
                    retry_at = time.monotonic() + self.retry_s
            if now >= next_sync:
                self._sync_later()
                next_sync = now + self.sync_s
            if now >= next_meta:
                self._refresh_meta()
                next_meta = now + self.meta_s
            if (
                self._stopping
                and not self.queue
                and (not self.pending or time.monotonic() >= self._stop_deadline)
            ):
                self._sync()
                self._refresh_meta()
                return

    def _take(self) -> None:
        """Move what is queued to `pending`, decoding raw messages here, off the MQTT thread."""
        queue, pending = self.queue, self.pending
        take, keep = queue.popleft, pending.append
        while queue:
            op = take()
            keep(decode_bytes(*op) if type(op) is tuple else op)

    def _write_pending(self) -> bool:
        while self.pending or self._deferred:
            ops = self.pending[: self.max_batch]
            try:
                batch = self._transaction(ops)
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc)
                return False
            del self.pending[: len(ops)]
            if self.failing:
                log.warning("recording resumed after a write failure (%s)", self.failing)
                self.failing = None
            for event in batch.notify:
                self._emit(event)
            for done in batch.flushes:
                done()
        return True

    def _failed(self, exc: BaseException) -> None:
        full = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)) or (
            isinstance(exc, sqlite3.Error) and "full" in str(exc)
        )
        code = "disk_full" if full else "write_failed"
        text = f"{type(exc).__name__}: {exc}"
        if self.failing is None:
            where = self.data_dir
            message = (
                f"the recorder cannot write to {where} ({text}); {len(self.pending)} messages wait in "
                f"memory and are written when it can. "
                + ("Free some space on that disk." if full else "Check the disk and its permissions.")
            )
            log.error("%s", message)
            event = RecorderEvent("alarm", code, message, self.clock.now().timestamp(), data={"error": text})
            self._emit(event)
            self._deferred.append(event)
        self.failing = text

    def _emit(self, event: RecorderEvent) -> None:
        try:
            self.notify(event)
        except Exception:  # the hub's callback must not stop recording
            log.exception("recorder event callback failed")

    # -- one transaction -------------------------------------------------------------------------

    def _transaction(self, ops: list[Op]) -> Batch:
        now = self.clock.now().timestamp()
        saved = {k: s.copy() for k, s in self.streams.items()}
        saved_runs = dict(self.runs)
        batch = Batch()
        db = self.store.db
        db.execute("BEGIN")
        try:
            deferred, self._deferred = self._deferred, []
            for event in deferred:
                self._recorder_event(batch, event, notify=False)
            if self.failing:  # stored with the batch that proves the disk takes writes again
                message = f"recording resumed after a write failure ({self.failing}); nothing queued was lost"
                event = RecorderEvent("info", "recording_resumed", message, self.clock.now().timestamp())
                self._recorder_event(batch, event)
            for op in ops:
                self._apply(op, batch, now)
            self.store.insert_rows("INSERT OR IGNORE INTO messages", 6, batch.messages)
            self.store.insert_rows("INSERT OR IGNORE INTO readings", 4, batch.readings)
            db.executemany(
                "INSERT INTO events(unit, module, seq, ts, ts_utc, level, code, message, source, "
                "hist, received_at, run_id, data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                batch.events,
            )
            db.executemany(
                "INSERT INTO states VALUES (?,?,?,?) ON CONFLICT(unit, module) DO UPDATE SET "
                "payload=excluded.payload, received_at=excluded.received_at",
                batch.states.values(),
            )
            db.executemany(
                "INSERT INTO commands(run_id, ts, effect_id, unit, module, cmd, line) VALUES (?,?,?,?,?,?,?)",
                batch.commands,
            )
            self.store.save_streams(list(batch.touched.values()))
            for run in self.runs.values():
                run.write(now)  # files first: after a crash here the files' floor covers the difference
            db.execute("COMMIT")
        except BaseException:
            self._deferred = deferred + self._deferred
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            for run in self.runs.values():
                run.rollback()
            for run_id, run in self.runs.items():
                if run_id not in saved_runs:
                    run.close()
            self.runs = saved_runs
            self.streams = saved
            self._routes.clear()
            self.store.forget_series()
            raise
        for run in self.runs.values():
            run.commit()
        self._publish()
        return batch

    def _apply(self, op: Op, batch: Batch, now: float) -> None:
        if self._record(op, batch, now):
            return
        if isinstance(op, Flush):
            batch.flushes.append(op.done)
        elif isinstance(op, (OpenRun, CloseRun, EffectOp, VersionOp)):
            self._routes.clear()  # the runs a unit's data goes to may change
            self._run_op(op, batch, now)

    # -- upkeep ----------------------------------------------------------------------------------

    def _sync_later(self) -> None:
        """The files written since the last round to the syncer's thread (next round if it is busy)."""
        if not self.syncer.idle():
            return
        fds: list[int] = []
        for run in self.runs.values():
            try:
                fds += run.sync_later()
            except OSError as exc:
                log.warning("recorder: cannot fsync the files of %s: %s", run.run_id, exc)
        self.syncer.hand(fds)

    def _sync(self) -> None:
        for run in self.runs.values():
            try:
                run.sync()
            except OSError as exc:
                log.warning("recorder: cannot fsync the files of %s: %s", run.run_id, exc)

    def _refresh_meta(self) -> None:
        if self.failing:
            return
        for run_id, run in self.runs.items():
            try:
                run.write_meta(self._run_counts(run_id, run), self.software_version)
            except (OSError, sqlite3.Error) as exc:
                log.warning("recorder: cannot rewrite run.json of %s: %s", run_id, exc)

    def _publish(self) -> None:
        self.published = {
            k: {**s.counts(), "last_seq": s.last_seq, "last_problem": s.last_problem}
            for k, s in self.streams.items()
        }
