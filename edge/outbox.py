"""The unit's durable outbox: every data and event message, numbered and stored before it is sent.

One SQLite file in WAL mode (format and durability: docs/outbox.md). `append`
gives each message the next `seq` of its module and commits before it
returns; the forwarder reads `pending` messages in append order and `ack`s
them once the broker has confirmed them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple

from lecis.errors import LabedgeError

FORMAT_VERSION = 1
KINDS = ("data", "event")

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


class OutboxError(LabedgeError):
    """The outbox file cannot be opened, read or written."""


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


def _id_ranges(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ids collapsed into inclusive (first, last) runs of consecutive ids."""
    ranges: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if ranges and ranges[-1][1] == i - 1:
            ranges[-1] = (ranges[-1][0], i)
        else:
            ranges.append((i, i))
    return ranges


class Outbox:
    """Store-and-forward queue of one unit, in `path`; holds at most `max_messages`.

    Reaching the limit drops the oldest messages; `take_dropped()` says how many,
    so the caller can raise an alarm. Not thread-safe: use it from one thread.
    """

    def __init__(self, path: Path, max_messages: int = 1_000_000, sync_interval_s: float = 1.0) -> None:
        if max_messages < 1:
            raise ValueError(f"outbox max_messages must be at least 1, got {max_messages}")
        self.path = Path(path)
        self.max_messages = max_messages
        self.sync_interval_s = sync_interval_s  # how often the owner should call sync()
        # Deleting in chunks keeps the cost of a full outbox off most appends.
        self.drop_chunk = max(1, max_messages // 100)
        self._db: sqlite3.Connection | None = None
        self._seqs: dict[str, int] = {}
        self._last_id = 0
        self._count = 0
        self._dropped = 0

    # ---- life ------------------------------------------------------------------------------------
    def open(self) -> Outbox:
        if self._db is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error("cannot be opened", exc) from exc
        try:
            self._prepare(db)
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
        self._db = db
        return self

    def _prepare(self, db: sqlite3.Connection) -> None:
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
        self._count = db.execute("SELECT count(*) FROM message").fetchone()[0]
        self._last_id = db.execute("SELECT coalesce(max(id), 0) FROM message").fetchone()[0]
        self._dropped = 0

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # everything is committed already; the WAL is replayed at the next open
            db.close()

    def __enter__(self) -> Outbox:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Outbox:
        return self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    # ---- writing ---------------------------------------------------------------------------------
    def append(self, module: str, kind: Literal["data", "event"], body: dict[str, Any]) -> int:
        """Store one message and return its seq; committed before this returns."""
        db = self._require_open()
        if kind not in KINDS:
            raise ValueError(f"outbox kind must be one of {KINDS}, got {kind!r}")
        if "seq" in body or "hist" in body:
            raise ValueError("outbox body must not carry seq or hist; the outbox assigns them")
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        seq = self._seqs.get(module, 0) + 1
        msg_id = self._last_id + 1
        dropped = 0
        try:
            db.execute("BEGIN")
            if self._count >= self.max_messages:
                dropped = self._drop_oldest(db, self._count - self.max_messages + 1)
            db.execute("INSERT INTO message VALUES (?, ?, ?, ?, ?)", (msg_id, module, kind, seq, text))
            db.execute("INSERT OR REPLACE INTO module_seq VALUES (?, ?)", (module, seq))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise self._error("could not store a message", exc) from exc
        self._seqs[module] = seq
        self._last_id = msg_id
        self._count += 1 - dropped
        self._dropped += dropped
        return seq

    def _drop_oldest(self, db: sqlite3.Connection, at_least: int) -> int:
        chunk = max(at_least, self.drop_chunk)
        cursor = db.execute(
            "DELETE FROM message WHERE id IN (SELECT id FROM message ORDER BY id LIMIT ?)", (chunk,)
        )
        return cursor.rowcount

    def ack(self, ids: Iterable[int]) -> None:
        """Delete delivered messages; ids already gone are ignored."""
        db = self._require_open()
        ranges = _id_ranges(ids)
        if not ranges:
            return
        deleted = 0
        try:
            db.execute("BEGIN")
            for first, last in ranges:
                deleted += db.execute("DELETE FROM message WHERE id BETWEEN ? AND ?", (first, last)).rowcount
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise self._error("could not delete delivered messages", exc) from exc
        self._count -= deleted

    def sync(self) -> None:
        """Checkpoint the WAL; everything appended before this call survives a power loss."""
        db = self._require_open()
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            raise self._error("could not be flushed to disk", exc) from exc

    # ---- reading ---------------------------------------------------------------------------------
    def pending(self, after_id: int = 0, limit: int = 1000) -> list[OutboxMessage]:
        """Up to `limit` stored messages with id above `after_id`, in append order."""
        db = self._require_open()
        try:
            rows = db.execute(
                "SELECT id, module, kind, seq, body FROM message WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._error("could not be read", exc) from exc
        return list(map(OutboxMessage._make, rows))

    def count(self) -> int:
        return self._count

    def last_seq(self, module: str) -> int:
        """The seq of the module's latest message (0 if it never had one)."""
        return self._seqs.get(module, 0)

    def max_id(self) -> int:
        """Id of the latest appended message (0 if none); ids only grow while the outbox is open."""
        return self._last_id

    def take_dropped(self) -> int:
        """Messages dropped for the size limit since the last call."""
        dropped, self._dropped = self._dropped, 0
        return dropped

    def disk_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            part = self.path.with_name(self.path.name + suffix)
            if part.exists():
                total += part.stat().st_size
        return total

    # ---- helpers ---------------------------------------------------------------------------------
    def _require_open(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError(f"outbox {self.path} is not open; call open() or use `with Outbox(...)`")
        return self._db

    def _error(self, what: str, exc: sqlite3.Error) -> OutboxError:
        if "full" in str(exc):
            return OutboxError(f"outbox {self.path} {what}: the disk is full ({exc}); free space on "
                               f"that filesystem or lower outbox.max_messages")
        return OutboxError(
            f"outbox {self.path} {what} ({exc}); the file is damaged or not an outbox: stop the unit and "
            f"move the file aside (unsent readings can be salvaged with `sqlite3 {self.path} .recover | "
            f"sqlite3 recovered.sqlite3`); the unit then starts a new, empty outbox"
        )
