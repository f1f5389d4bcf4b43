"""Per-file upload state of every session, in SQLite (`DATA_DIR/uploads.sqlite3`), one commit per file.

A row per (session, relative path): path, size, mtime_ns, md5, generation,
uploaded_at and a state:

* `baseline`: the file was in the watched folder before the session began;
  it goes up only once it changes.
* `pending`: changed, waiting to be stable and uploaded (kept so a crash
  never loses it); `uploading`: a transfer began (after a crash, started again).
* `done`: the bucket holds this size/mtime/md5 at `generation`.

In every state `md5` and `generation` are what the bucket holds (a baseline
row of a `checksum_only` folder: the file's MD5 when the session began).
* `gone`: deleted or renamed before it could go up; `error`: refused for good
  (unreadable, a conflict) until the file changes. Both are reported once.

Why SQLite and not a tinydb JSON file: the rule is "stored after each file",
and a JSON document is rewritten whole on each store, so 1,000 files cost
1,000 rewrites of a growing file (quadratic; bench/upload_bench.py measures
both). An SQLite commit writes only the changed row (WAL; outcomes synced at once).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from lecis.errors import LabedgeError

FILE = "uploads.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, unit TEXT NOT NULL, baseline_done INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files (
  session_id TEXT NOT NULL, rel TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL, md5 TEXT, generation INTEGER, uploaded_at TEXT, state TEXT NOT NULL,
  error TEXT, uploads INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (session_id, rel));
"""
UPSERT = ("INSERT OR REPLACE INTO files (session_id, rel, path, size, mtime_ns, md5, generation, "
          "uploaded_at, state, error, uploads) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
STATES = ("baseline", "pending", "uploading", "done", "gone", "error")


class ManifestUnreadable(LabedgeError):
    """The upload state file cannot be opened; nothing is uploaded rather than everything again."""


@dataclass(frozen=True)
class FileState:
    rel: str
    path: str
    size: int
    mtime_ns: int
    state: str
    md5: str | None = None
    generation: int | None = None
    uploaded_at: str | None = None
    error: str | None = None
    uploads: int = 0  # transfers this hub completed for this file (each a new generation)

    @property
    def sig(self) -> tuple[int, int]:
        return (self.size, self.mtime_ns)


class Manifest:
    """Thread-safe: the executor's threads and the event loop share one connection under a lock."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._sync = "NORMAL"
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise ManifestUnreadable(
                f"{self.path}: the upload state cannot be read ({e}). Move it aside (mv {self.path} "
                f"{self.path}.damaged) to start over: the files of open sessions then go up again") from e
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def session_known(self, session_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT baseline_done FROM sessions WHERE id=?", (session_id,)).fetchone()
        return bool(row and row[0])

    def add_session(self, session_id: str, unit: str, baseline: list[tuple[str, str, int, int]]) -> None:
        """Remember a new session and the files its folders held when it began, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO files (session_id, rel, path, size, mtime_ns, state) "
                    "VALUES (?, ?, ?, ?, ?, 'baseline')", [(session_id, *b) for b in baseline])
                self._db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, 1)", (session_id, unit))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def files(self, session_id: str) -> dict[str, FileState]:
        with self._lock:
            rows = self._db.execute(
                "SELECT rel, path, size, mtime_ns, state, md5, generation, uploaded_at, error, uploads "
                "FROM files WHERE session_id=?", (session_id,)).fetchall()
        return {r[0]: FileState(*r) for r in rows}

    def put_many(self, session_id: str, rows: list[FileState]) -> None:
        """Several pending rows in one transaction (what one scan found changed)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(UPSERT, [_row(session_id, f) for f in rows])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def put(self, session_id: str, f: FileState) -> None:
        """Store one file's state now (committed before returning)."""
        if f.state not in STATES:
            raise ValueError(f"unknown upload state {f.state!r}")
        # An outcome (done, gone, error) is synced before returning: it survives a power cut. A pending or
        # uploading row only survives the process being killed (WAL, synchronous=NORMAL): after a power
        # cut the scan finds that file again anyway, so one fsync per file is saved.
        sync = "FULL" if f.state in ("done", "gone", "error") else "NORMAL"
        with self._lock:
            if sync != self._sync:
                self._db.execute(f"PRAGMA synchronous={sync}")
                self._sync = sync
            self._db.execute(UPSERT, _row(session_id, f))


def _row(session_id: str, f: FileState) -> tuple[object, ...]:
    return (session_id, f.rel, f.path, f.size, f.mtime_ns, f.md5, f.generation, f.uploaded_at, f.state,
            f.error, f.uploads)
