"""The outbox's writer thread: the only user of the SQLite connection once the outbox is open.

The event loop hands it operations through a queue and never waits for it.
Appends and acks queued together are committed in one transaction; a commit
that fails (disk full, I/O error) is kept and retried, so nothing raises back
into the loop. Only committed messages are ever offered for sending: a seq that
could still be lost to a crash must not reach the broker, or the next process
would hand it out again for another reading.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, NamedTuple

log = logging.getLogger("labedge.outbox")

COMMIT_CHUNK = 5000  # messages per transaction: keeps reads and acks waiting at most one chunk
RETRY_S = 1.0  # after a failed commit
FULL_REPORT_S = 1.0  # outbox_full is reported at most this often, with the count since the last one


class OutboxMessage(NamedTuple):
    """One stored message; `body` is its contract JSON without `seq` and `hist`."""

    id: int
    module: str
    kind: str
    seq: int
    body: bytes

    def payload(self, hist: bool) -> bytes:
        """The contract payload: `seq` and `hist` spliced in front of the stored body."""
        body = self.body
        rest = b"," + body[1:] if len(body) > 2 else body[1:]
        return b'{"seq":%d,"hist":%s%s' % (self.seq, b"true" if hist else b"false", rest)


def id_ranges(ids: list[int]) -> list[tuple[int, int]]:
    """Sorted ids collapsed into inclusive (first, last) runs of consecutive ids."""
    ranges: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if ranges and ranges[-1][1] == i - 1:
            ranges[-1] = (ranges[-1][0], i)
        else:
            ranges.append((i, i))
    return ranges


@dataclass
class Shared:
    """State both threads read; written under `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    room: threading.Condition = field(init=False)
    count: int = 0  # stored or queued for storing
    queued: int = 0  # handed to the writer, not yet committed or discarded
    committed_id: int = 0  # every message up to this id is committed (or was dropped)
    dropped: int = 0  # for take_dropped()
    memory_from: int = 0  # messages below this id are never served from memory (dropped unwritten)
    failing: bool = False
    busy_since: float = 0.0  # time.monotonic() the writer entered SQLite, 0 when it is not in it

    def __post_init__(self) -> None:
        self.room = threading.Condition(self.lock)


# Operations on the queue: (kind, argument).
APPEND, ACK, READ, SYNC, FLUSH, CLOSE = range(6)


class Writer(threading.Thread):
    """Commits what the loop queues; `report(code, message)` and `progressed()` are called from here."""

    def __init__(self, db: sqlite3.Connection, path: str, stored: int, max_messages: int,
                 drop_chunk: int, memory_limit: int, shared: Shared,
                 report: Callable[[str, str], None], progressed: Callable[[], None]) -> None:
        super().__init__(name="outbox-writer", daemon=True)
        self.db = db
        self.path = path
        self.stored = stored
        self.max_messages = max_messages
        self.drop_chunk = drop_chunk
        self.memory_limit = memory_limit
        self.shared = shared
        self.report = report
        self.progressed = progressed
        self.ops: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        self.unwritten: deque[OutboxMessage] = deque()
        self.unacked: list[int] = []
        self._failure: str | None = None
        self._full_dropped = 0  # dropped for the size limit, not yet reported
        self._full_reported_at = -FULL_REPORT_S

    # ---- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        while True:
            try:
                if self._serve_once():
                    return
            except Exception:  # a bug here must not silently stop the outbox
                log.exception("outbox writer failed; retrying")
                self._fail("outbox_write_failed", "the outbox writer met an unexpected error")

    def _serve_once(self) -> bool:
        """One batch of operations; True once closed."""
        waiting = bool(self.unwritten or self.unacked or self._full_dropped)
        try:
            first = self.ops.get(timeout=RETRY_S if waiting else None)
        except queue.Empty:
            self._commit()
            self._report_full()
            return False
        batch = [first]
        while len(batch) < COMMIT_CHUNK:
            try:
                batch.append(self.ops.get_nowait())
            except queue.Empty:
                break
        after: list[tuple[int, Any]] = []
        for kind, arg in batch:
            if kind == APPEND:
                self.unwritten.append(arg)
            elif kind == ACK:
                self.unacked.extend(arg)
            else:
                after.append((kind, arg))
        self._commit()
        for kind, arg in after:
            if kind == READ:
                self._read(*arg)
            elif kind == SYNC:
                self.shared.busy_since = time.monotonic()
                self._checkpoint("PASSIVE")
                self.shared.busy_since = 0.0
            elif kind == FLUSH:
                arg.set_result(not self.unwritten and not self.unacked)
            elif kind == CLOSE:
                self._close()
                arg.set_result(True)
                return True
        return False

    # ---- writing -----------------------------------------------------------------------------
    def _commit(self) -> None:
        if self._failure is None and not self.unwritten and not self.unacked:
            return
        while self.unwritten or self.unacked:
            chunk = [self.unwritten[i] for i in range(min(COMMIT_CHUNK, len(self.unwritten)))]
            self.shared.busy_since = time.monotonic()
            try:
                deleted, dropped = self._transaction(chunk)
            except sqlite3.Error as exc:
                self._rollback()
                self._on_failure(exc)
                return
            finally:
                self.shared.busy_since = 0.0
            for _ in chunk:
                self.unwritten.popleft()
            self.unacked.clear()
            self.stored += len(chunk) - deleted - dropped
            with self.shared.lock:
                self.shared.count -= deleted + dropped
                self.shared.queued -= len(chunk)
                self.shared.dropped += dropped
                if chunk:
                    self.shared.committed_id = chunk[-1].id
                self.shared.room.notify_all()
            self._full_dropped += dropped
            self._report_full()
            if chunk:  # new messages to send; an ack-only commit wakes nobody
                self.progressed()
        if self._failure is not None:
            log.warning("outbox %s writes again", self.path)
            self._failure = None
            with self.shared.lock:
                self.shared.failing = False
                self.shared.room.notify_all()

    def _report_full(self) -> None:
        # Once a second at most: the alarm itself goes into the full outbox.
        now = time.monotonic()
        if self._full_dropped and now - self._full_reported_at >= FULL_REPORT_S:
            dropped, self._full_dropped = self._full_dropped, 0
            self._full_reported_at = now
            self.report("outbox_full", f"outbox reached its limit of {self.max_messages} messages "
                                       f"while the broker was unreachable; dropped the {dropped} "
                                       f"oldest messages")

    def _transaction(self, chunk: list[OutboxMessage]) -> tuple[int, int]:
        db = self.db
        deleted = dropped = 0
        db.execute("BEGIN")
        for first, last in id_ranges(self.unacked):
            deleted += db.execute("DELETE FROM message WHERE id BETWEEN ? AND ?", (first, last)).rowcount
        if chunk:
            db.executemany("INSERT INTO message VALUES (?, ?, ?, ?, ?)", chunk)
            last_seq = {m.module: m.seq for m in chunk}
            db.executemany("INSERT OR REPLACE INTO module_seq VALUES (?, ?)", last_seq.items())
        excess = self.stored - deleted + len(chunk) - self.max_messages
        if excess > 0:
            # Deleting in chunks keeps the cost of a full outbox off most commits.
            dropped = db.execute(
                "DELETE FROM message WHERE id IN (SELECT id FROM message ORDER BY id LIMIT ?)",
                (max(excess, self.drop_chunk),),
            ).rowcount
        db.execute("COMMIT")
        return deleted, dropped

    def _rollback(self) -> None:
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the next BEGIN reports what is wrong

    def _on_failure(self, exc: sqlite3.Error) -> None:
        # Bounded memory: beyond the limit the oldest unwritten readings go, counted.
        extra = len(self.unwritten) - self.memory_limit
        if extra > 0:
            for _ in range(extra):
                last_dropped = self.unwritten.popleft().id
            with self.shared.lock:
                self.shared.memory_from = last_dropped + 1
                self.shared.count -= extra
                self.shared.queued -= extra
                self.shared.dropped += extra
            self.report("outbox_full", f"outbox {self.path} cannot be written and its memory buffer of "
                                       f"{self.memory_limit} messages is full; dropped the {extra} oldest")
        if "full" in str(exc):
            code, why = "disk_full", (f"the disk under outbox {self.path} is full ({exc}); readings wait "
                                      f"in memory (up to {self.memory_limit}); free space on that "
                                      f"filesystem or lower outbox.max_messages")
        else:
            code, why = "outbox_write_failed", (f"outbox {self.path} cannot be written ({exc}); readings "
                                                f"wait in memory (up to {self.memory_limit}); check the "
                                                f"disk, then restart the unit")
        self._fail(code, why)

    def _fail(self, code: str, message: str) -> None:
        with self.shared.lock:
            self.shared.failing = True
            self.shared.room.notify_all()
        if self._failure != code:  # one alarm per episode, not one per retry
            self._failure = code
            log.error("%s", message)
            self.report(code, message)
            self.progressed()  # the forwarder now also sends what waits in memory

    def _checkpoint(self, mode: str) -> None:
        try:
            self.db.execute(f"PRAGMA wal_checkpoint({mode})")
        except sqlite3.Error as exc:
            self._fail("outbox_write_failed", f"outbox {self.path} could not be flushed to disk ({exc})")

    # ---- reading and closing -----------------------------------------------------------------
    def _read(self, after_id: int, limit: int, result: Future[list[OutboxMessage]]) -> None:
        try:
            rows = self.db.execute(
                "SELECT id, module, kind, seq, body FROM message WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            self._fail("outbox_write_failed", f"outbox {self.path} could not be read ({exc})")
            result.set_result([])
            return
        result.set_result(list(map(OutboxMessage._make, rows)))

    def _close(self) -> None:
        if self.unwritten:
            log.error("outbox %s closed with %d messages it could not write", self.path, len(self.unwritten))
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # everything is committed already; the WAL is replayed at the next open
        self.db.close()
