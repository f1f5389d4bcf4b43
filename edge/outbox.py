"""The unit's durable outbox: every data and event message, numbered and stored before it is sent.

One SQLite file in WAL mode (format and durability: docs/outbox.md). `append`
gives each message the next `seq` of its module at once, in memory, and hands
it to a writer thread (edge/outbox_writer.py) that commits in batches: no call
made on the event loop waits for the disk. The forwarder `fetch`es committed
messages in append order (recent ones straight from memory) and `ack`s them
once the broker has confirmed them. Disk problems never raise from `append`:
they go to `on_problem(code, message)` and the messages wait in memory.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from edge.outbox_writer import ACK, APPEND, CLOSE, FLUSH, READ, SYNC, OutboxMessage, Shared, Writer
from lecis.errors import LabedgeError, SettingInvalid
from lecis.wire import to_bytes

__all__ = ["KINDS", "FORMAT_VERSION", "Outbox", "OutboxError", "OutboxMessage"]

log = logging.getLogger("labedge.outbox")

FORMAT_VERSION = 1
KINDS = ("data", "event")
RECENT = 5000  # appended messages kept in memory for the forwarder
READ_AHEAD = 5000  # rows read from the file at once for a backlog, served from memory after
BACKPRESSURE_S = 2.0  # longest an append waits for a healthy writer that is behind
STUCK_S = 0.5  # a writer inside one SQLite call this long is treated as stuck: appends never wait on it

_SCHEMA = """
CREATE TABLE message (
    id INTEGER PRIMARY KEY,
    module TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE module_seq (
    module TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
"""

OnProblem = Callable[[str, str], None]


class OutboxError(LabedgeError):
    """The outbox file cannot be opened, or the outbox is used while closed."""


class Outbox:
    """Store-and-forward queue of one unit, in `path`; holds at most `max_messages`.

    Reaching the limit drops the oldest messages; `take_dropped()` says how many
    and `on_problem("outbox_full", ...)` says so too. Call it from one thread (the
    event loop's); `on_problem` and the `watch` callbacks run on that loop when
    the outbox was opened inside one, else on the writer thread.
    `memory_limit` bounds the messages waiting in memory for the disk.
    """

    def __init__(self, path: Path, max_messages: int = 1_000_000, sync_interval_s: float = 1.0,
                 on_problem: OnProblem | None = None, memory_limit: int = 20_000) -> None:
        if max_messages < 1:
            raise SettingInvalid(f"outbox max_messages must be at least 1, got {max_messages}")
        self.path = Path(path)
        self.max_messages = max_messages
        self.sync_interval_s = sync_interval_s  # how often the owner should call sync()
        self.drop_chunk = max(1, max_messages // 100)
        self.memory_limit = max(1, memory_limit)
        self.on_problem = on_problem
        self._writer: Writer | None = None
        self._shared = Shared()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seqs: dict[str, int] = {}
        self._last_id = 0
        self._recent: deque[OutboxMessage] = deque(maxlen=RECENT)
        self._watchers: list[Callable[[], None]] = []
        # Backlog rows read ahead: every stored message with an id in (_ahead_from, last row] is there.
        self._ahead: list[OutboxMessage] = []
        self._ahead_ids: list[int] = []
        self._ahead_from = 0

    # ---- life ------------------------------------------------------------------------------------
    def open(self) -> Outbox:
        """Open the file (errors raise here, synchronously) and start the writer thread."""
        if self._writer is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Opened here so that a locked or damaged file fails the caller; used by the writer after.
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error("cannot be opened", exc) from exc
        try:
            count = self._prepare(db)
        except OutboxError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            if "locked" in str(exc):
                raise OutboxError(
                    f"outbox {self.path} is in use by another process; stop the other unit process "
                    f"(only one may own an outbox) and start again"
                ) from exc
            raise self._error("is unreadable", exc) from exc
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._shared = Shared(count=count, committed_id=self._last_id)
        self._recent.clear()
        self._ahead, self._ahead_ids, self._ahead_from = [], [], 0
        self._writer = Writer(db, str(self.path), count, self.max_messages, self.drop_chunk,
                              self.memory_limit, self._shared, self._report, self._progressed)
        self._writer.start()
        return self

    def _prepare(self, db: sqlite3.Connection) -> int:
        # Exclusive locking: a second unit process on the same file would hand out
        # duplicate seqs, so it must fail at open; it also lets WAL skip the -shm file.
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("PRAGMA busy_timeout=0")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"outbox {self.path}: the filesystem does not support SQLite WAL mode "
                              f"(journal_mode is {mode}); put data_dir on a local disk")
        # NORMAL in WAL: a commit survives a crash of this process; fsync happens at checkpoints.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")  # takes the exclusive lock now, not at the first append
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if version == 0 and not tables:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={FORMAT_VERSION}")
            elif version != FORMAT_VERSION or not {"message", "module_seq"} <= tables:
                raise OutboxError(
                    f"outbox {self.path} is not a labedge outbox of format {FORMAT_VERSION} "
                    f"(user_version {version}, tables {sorted(tables)}); set data_dir to another "
                    f"directory or move this file aside"
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._seqs = dict(db.execute("SELECT module, seq FROM module_seq"))
        # count(*) walks every table page, so a damaged file is reported here, at open.
        count = db.execute("SELECT count(*) FROM message").fetchone()[0]
        self._last_id = db.execute("SELECT coalesce(max(id), 0) FROM message").fetchone()[0]
        return int(count)

    def close(self) -> None:
        """Commit what is queued, checkpoint, close; waits for the disk (call it on the way out)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        done: Future[bool] = Future()
        writer.ops.put((CLOSE, done))
        writer.join(timeout=30)
        if writer.is_alive():
            log.error("outbox %s writer did not finish within 30 s", self.path)

    def __enter__(self) -> Outbox:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Outbox:
        return self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    # ---- writing (never waits for the disk) -------------------------------------------------------
    def append(self, module: str, kind: Literal["data", "event"], body: dict[str, Any]) -> int:
        """Number one message and queue it for the disk; returns its seq at once.

        Committed within milliseconds (see docs/outbox.md for what a crash can cost).
        Raises only for a wrong call (ValueError) or a closed outbox.
        """
        writer = self._require_open()
        if kind not in KINDS:
            raise SettingInvalid(f"outbox kind must be one of {KINDS}, got {kind!r}")
        if "seq" in body or "hist" in body:
            raise SettingInvalid("outbox body must not carry seq or hist; the outbox assigns them")
        text = to_bytes(body)  # the one encoder: a lone surrogate in a message never fails here
        seq = self._seqs.get(module, 0) + 1
        self._seqs[module] = seq
        if not self._room():
            # Memory is full and the disk takes nothing: this reading goes, counted, and the seq
            # it had is a gap the outbox_full alarm explains.
            with self._shared.lock:
                self._shared.dropped += 1
            self._report("outbox_full", f"outbox {self.path}: the disk takes no writes and "
                                        f"{self.memory_limit} messages wait in memory; dropping new ones")
            return seq
        self._last_id += 1
        msg = OutboxMessage(self._last_id, module, kind, seq, text)
        self._recent.append(msg)
        writer.ops.put((APPEND, msg))
        return seq

    def _room(self) -> bool:
        """Count one more queued message, if memory allows; a healthy writer that is behind
        (a burst of appends) is waited for briefly, a failing or stuck one never."""
        shared = self._shared
        with shared.lock:
            if shared.queued >= self.memory_limit:
                def stuck() -> bool:
                    since = shared.busy_since
                    return shared.failing or (since > 0 and time.monotonic() - since > STUCK_S)

                if stuck() or not shared.room.wait_for(
                        lambda: shared.queued < self.memory_limit or stuck(), BACKPRESSURE_S) or stuck():
                    if shared.queued >= self.memory_limit:
                        return False
            shared.queued += 1
            shared.count += 1
        return True

    def ack(self, ids: Iterable[int]) -> None:
        """Delete delivered messages (queued for the writer); ids already gone are ignored."""
        writer = self._require_open()
        ids = list(ids)
        if ids:
            writer.ops.put((ACK, ids))

    def sync(self) -> None:
        """Ask for a WAL checkpoint: what was committed before it then survives a power loss."""
        self._require_open().ops.put((SYNC, None))

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until everything queued so far is committed; blocks, so not for the event loop.

        False when the disk refused it (the messages wait in memory) or on timeout.
        """
        done: Future[bool] = Future()
        self._require_open().ops.put((FLUSH, done))
        try:
            return done.result(timeout)
        except TimeoutError:
            return False

    async def flushed(self) -> bool:
        """`flush()` for the event loop: awaits the writer without blocking the loop."""
        done: Future[bool] = Future()
        self._require_open().ops.put((FLUSH, done))
        return await asyncio.wrap_future(done)

    # ---- reading ---------------------------------------------------------------------------------
    async def fetch(self, after_id: int = 0, limit: int = 1000) -> list[OutboxMessage]:
        """Up to `limit` committed messages with id above `after_id`, in append order.

        Recent messages come from memory; older ones from the writer thread, awaited.
        """
        writer = self._require_open()
        self._loop = asyncio.get_running_loop()  # commits wake the forwarder on its own loop
        # While the disk refuses writes, what waits in memory is sent too (best effort:
        # docs/outbox.md says what a crash in that state costs).
        committed = self._last_id if self._shared.failing else self._shared.committed_id
        if after_id >= committed:
            return []
        recent = self._recent
        if recent and recent[0].id <= after_id + 1 and after_id + 1 >= self._shared.memory_from:
            start = after_id + 1 - recent[0].id  # ids in memory are consecutive
            stop = start + min(limit, committed - after_id)
            return list(islice(recent, start, stop))
        ahead = self._ahead
        if ahead and self._ahead_from <= after_id < ahead[-1].id:
            start = bisect.bisect_right(self._ahead_ids, after_id)
            return ahead[start:start + limit]
        result: Future[list[OutboxMessage]] = Future()
        writer.ops.put((READ, (after_id, max(limit, READ_AHEAD), result)))
        rows = await asyncio.wrap_future(result)
        self._ahead, self._ahead_ids, self._ahead_from = rows, [m.id for m in rows], after_id
        return rows[:limit]

    def pending(self, after_id: int = 0, limit: int = 1000) -> list[OutboxMessage]:
        """Like `fetch`, after a `flush()`, read from the file; blocks (tests, tools, benches)."""
        writer = self._require_open()
        self.flush()
        result: Future[list[OutboxMessage]] = Future()
        writer.ops.put((READ, (after_id, limit, result)))
        return result.result(30)

    def watch(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after each commit (the forwarder's wake-up)."""
        self._watchers.append(callback)

    def count(self) -> int:
        """Messages stored or queued for storing."""
        return self._shared.count

    def committed_id(self) -> int:
        """Every message up to this id is committed."""
        return self._shared.committed_id

    def last_seq(self, module: str) -> int:
        """The seq of the module's latest message (0 if it never had one)."""
        return self._seqs.get(module, 0)

    def max_id(self) -> int:
        """Id of the latest appended message (0 if none); ids only grow while the outbox is open."""
        return self._last_id

    def take_dropped(self) -> int:
        """Messages dropped for the size limit (or a full memory buffer) since the last call."""
        with self._shared.lock:
            dropped, self._shared.dropped = self._shared.dropped, 0
        return dropped

    def disk_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            part = self.path.with_name(self.path.name + suffix)
            if part.exists():
                total += part.stat().st_size
        return total

    # ---- helpers ---------------------------------------------------------------------------------
    def _require_open(self) -> Writer:
        if self._writer is None:
            raise OutboxError(f"outbox {self.path} is not open; call open() or use `with Outbox(...)`")
        return self._writer

    def _on_loop(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:
            fn()
            return
        try:
            loop.call_soon_threadsafe(fn)
        except RuntimeError:
            pass  # the loop is closed: nobody is left to tell

    def _report(self, code: str, message: str) -> None:
        handler = self.on_problem
        if handler is None:
            return

        def call() -> None:
            try:
                handler(code, message)
            except Exception:  # a failing alarm must not stop the outbox
                log.exception("outbox problem handler failed for %s", code)

        self._on_loop(call)

    def _progressed(self) -> None:
        for watcher in self._watchers:
            self._on_loop(watcher)

    def _error(self, what: str, exc: sqlite3.Error) -> OutboxError:
        if "full" in str(exc):
            return OutboxError(f"outbox {self.path} {what}: the disk is full ({exc}); free space on "
                               f"that filesystem or lower outbox.max_messages")
        return OutboxError(
            f"outbox {self.path} {what} ({exc}); the file is damaged or not an outbox: stop the unit and "
            f"move the file aside (unsent readings can be salvaged with `sqlite3 {self.path} .recover | "
            f"sqlite3 recovered.sqlite3`); the unit then starts a new, empty outbox"
        )
