"""What the unit promised and delivered, kept on disk across restarts: replies by command id, pump volume.

One SQLite file in the unit's data_dir (`durable.sqlite3`). It is read once,
at start, on the caller's thread; after that every write is queued and a
writer thread commits it (WAL, `synchronous=FULL`, so a commit is fsynced),
batching whatever queued up meanwhile. Nothing on the event loop waits on the
disk: an ESTOP is never behind a commit. The price is a window of at most one
batch (normally a few milliseconds) in which a reply already sent or volume
already pumped is not yet on disk; a process crash or power loss inside it
forgets that last write.

Stamps are wall-clock UTC seconds, because a monotonic clock restarts with
the process. See docs/durable.md for the bounds and the clock-jump rule.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from lecis.clock import Clock
from lecis.errors import LabedgeError

log = logging.getLogger("labedge.durable")

REPLY_CAPACITY = 10_000
REPLY_MAX_AGE_S = 24 * 3600.0
VOLUME_KEEP_S = 2 * 3600.0  # twice the hour: a little slack for clock steps while running
_PRUNE_EVERY = 500

Write = Callable[[sqlite3.Connection], None]

SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT NULL,
                                    at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS volume (module TEXT NOT NULL, at REAL NOT NULL, ml REAL NOT NULL);
CREATE INDEX IF NOT EXISTS volume_at ON volume (at);
CREATE TABLE IF NOT EXISTS segments (module TEXT PRIMARY KEY, started REAL NOT NULL,
                                     ml_per_s REAL NOT NULL, max_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS stretches (module TEXT PRIMARY KEY, used REAL NOT NULL, at REAL NOT NULL,
                                      is_on INTEGER NOT NULL);
"""


class DurableStateError(LabedgeError):
    """The unit's durable state file cannot be opened or read."""


class EventSink(Protocol):
    def event(self, level: str, code: str, message: str) -> None: ...


def alarm_every(modules: Callable[[], Iterable[EventSink]]) -> Callable[[str], None]:
    """An `on_error` that raises an `alarm` event `durable_write_failed` on every module."""
    def alarm(message: str) -> None:
        for module in modules():
            module.event("alarm", "durable_write_failed", message)

    return alarm


class DurableState:
    """Replies and pump volume on disk; `open()` before use, `close()` on the way out."""

    def __init__(self, path: Path, clock: Clock, reply_capacity: int = REPLY_CAPACITY,
                 reply_max_age_s: float = REPLY_MAX_AGE_S) -> None:
        self.path = path
        self.clock = clock
        self.reply_capacity = reply_capacity
        self.reply_max_age_s = reply_max_age_s
        self.write_errors = 0
        # Called once per episode of failed writes, on the event loop that opened the store.
        self.on_error: Callable[[str], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failing = False
        self._replies: list[tuple[str, str, dict[str, Any]]] = []
        self._volume: dict[str, list[tuple[float, float]]] = {}
        self._stretches: dict[str, tuple[float, float]] = {}
        self._queue: queue.SimpleQueue[Write | threading.Event | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._puts = 0

    # ---- life -------------------------------------------------------------------------------
    def open(self) -> None:
        """Read what the last process left (sync, at start), then start the writer thread."""
        if self._thread is not None:
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            self._load(db)
        except sqlite3.Error as exc:
            raise DurableStateError(
                f"cannot open the unit's durable state {self.path} ({exc}); if the file is damaged, move it "
                "away and start again (the last hour's pump volume and the reply log are then forgotten)"
            ) from exc
        self._thread = threading.Thread(target=self._write_loop, args=(db,), name="durable-writer",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Commit what is queued and stop the writer thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout=10.0)

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything queued so far is committed (tests, shutdown)."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    # ---- what the last process left ---------------------------------------------------------
    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _load(self, db: sqlite3.Connection) -> None:
        now = self._now()
        db.execute("DELETE FROM replies WHERE at < ?", (now - self.reply_max_age_s,))
        rows = db.execute("SELECT id, topic, payload FROM replies ORDER BY rowid DESC LIMIT ?",
                          (self.reply_capacity,)).fetchall()
        self._replies = []
        for command_id, topic, payload in reversed(rows):
            try:
                body = json.loads(payload)
            except ValueError:
                continue
            if isinstance(body, dict):
                self._replies.append((command_id, topic, body))
        # A future stamp (clock set back since) counts as made now, for a whole hour.
        for module, at, ml in db.execute("SELECT module, at, ml FROM volume WHERE at > ?",
                                         (now - VOLUME_KEEP_S,)):
            self._volume.setdefault(module, []).append((max(0.0, now - at), ml))
        # A pump that was on when the process died: count what it may have pumped until its
        # max_on_s cut, stamped at this start (the unit cannot know when it really stopped).
        for module, started, ml_per_s, max_s in db.execute(
                "SELECT module, started, ml_per_s, max_s FROM segments").fetchall():
            ml = ml_per_s * min(max_s, max(0.0, now - started))
            self._volume.setdefault(module, []).append((0.0, ml))
            db.execute("INSERT INTO volume VALUES (?, ?, ?)", (module, max(now, started), ml))
            db.execute("DELETE FROM segments WHERE module = ?", (module,))
        # An output's on-stretch: one that was on when the process died counts as on until this start.
        for module, used, at, is_on in db.execute("SELECT module, used, at, is_on FROM stretches").fetchall():
            age = max(0.0, now - at)
            self._stretches[module] = (used + age, 0.0) if is_on else (used, age)

    def replies(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(command id, reply topic, last reply) as the last process left them, oldest first."""
        return list(self._replies)

    def volume(self, module: str) -> list[tuple[float, float]]:
        """(age in seconds, ml) of what `module` pumped before this start, over the last two hours."""
        return list(self._volume.get(module, []))

    def stretch(self, module: str) -> tuple[float, float] | None:
        """(on-seconds, seconds off since) of `module`'s last on-stretch before this start, or None."""
        return self._stretches.get(module)

    # ---- writes (queued; committed by the writer thread) -------------------------------------
    def put_stretch(self, module: str, used: float, is_on: bool) -> None:
        """`module` turned on (`used`: on-seconds of its stretch before) or off (`used`: in all)."""
        row = (module, used, self._now(), int(is_on))

        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO stretches VALUES (?, ?, ?, ?)", row)

        self._queue.put(write)

    def put_reply(self, command_id: str, topic: str, payload: dict[str, Any]) -> None:
        # default=str: a result the wire codec can send must never fail to be kept.
        row = (command_id, topic, json.dumps(payload, separators=(",", ":"), default=str), self._now())
        self._puts += 1
        prune = self._puts % _PRUNE_EVERY == 0
        capacity, oldest = self.reply_capacity, row[3] - self.reply_max_age_s

        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)", row)
            if prune:
                db.execute("DELETE FROM replies WHERE at < ? "
                           "OR rowid <= (SELECT max(rowid) FROM replies) - ?", (oldest, capacity))

        self._queue.put(write)

    def segment_started(self, module: str, ml_per_s: float, max_s: float) -> None:
        """A pump turned on at `ml_per_s`; it cannot stay on beyond `max_s` (its max_on_s budget)."""
        row = (module, self._now(), ml_per_s, max_s)

        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO segments VALUES (?, ?, ?, ?)", row)

        self._queue.put(write)

    def add_volume(self, module: str, ml: float) -> None:
        """`module` delivered `ml` just now; its on-segment (if any) has ended."""
        now = self._now()

        def write(db: sqlite3.Connection) -> None:
            if ml > 0:
                db.execute("INSERT INTO volume VALUES (?, ?, ?)", (module, now, ml))
            db.execute("DELETE FROM segments WHERE module = ?", (module,))
            db.execute("DELETE FROM volume WHERE at < ?", (now - VOLUME_KEEP_S,))

        self._queue.put(write)

    # ---- the writer thread ------------------------------------------------------------------
    def _write_loop(self, db: sqlite3.Connection) -> None:
        try:
            while True:
                batch = [self._queue.get()]
                while True:  # whatever queued meanwhile goes into the same commit
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                writes = [w for w in batch if callable(w)]
                if writes:
                    self._commit(db, writes)
                for item in batch:
                    if isinstance(item, threading.Event):
                        item.set()
                if None in batch:
                    return
        finally:
            db.close()

    def _commit(self, db: sqlite3.Connection, writes: list[Write]) -> None:
        try:
            db.execute("BEGIN")
            for write in writes:
                write(db)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.write_errors += 1
            log.error("durable state: %d write(s) not saved to %s: %s", len(writes), self.path, exc)
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if not self._failing:
                self._failing = True
                self._report(f"the unit's durable state could not be saved to {self.path} ({exc}); limits "
                             "hold in memory, but a restart now would forget the last writes; check the disk")
            return
        if self._failing:
            self._failing = False
            log.warning("durable state: saved again to %s", self.path)

    def _report(self, message: str) -> None:
        callback, loop = self.on_error, self._loop
        if callback is None:
            return
        try:
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(callback, message)
            else:
                callback(message)
        except Exception:
            log.exception("durable state: reporting a write error failed")
