"""The SQLite database under `data_dir/recorder.sqlite3`: schema, and the writer thread's side of it.

One connection, owned by the writer thread, in WAL mode with `synchronous=NORMAL`:
a commit survives the process being killed (`kill -9`); readers (`query.Reader`)
use their own connections and never block the writer. Readings are stored a
row per value in a table clustered on (series, ts, seq), so a history query
reads one contiguous range.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams(
  id INTEGER PRIMARY KEY, unit TEXT NOT NULL, module TEXT NOT NULL, last_seq INTEGER,
  received INTEGER NOT NULL DEFAULT 0, stored INTEGER NOT NULL DEFAULT 0,
  duplicates INTEGER NOT NULL DEFAULT 0, gaps INTEGER NOT NULL DEFAULT 0,
  readings_lost INTEGER NOT NULL DEFAULT 0, recovered INTEGER NOT NULL DEFAULT 0,
  bad INTEGER NOT NULL DEFAULT 0, last_problem TEXT, UNIQUE(unit, module));
CREATE TABLE IF NOT EXISTS messages(
  stream INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, ts REAL, hist INTEGER NOT NULL,
  received_at REAL NOT NULL, PRIMARY KEY(stream, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series(
  id INTEGER PRIMARY KEY, stream INTEGER NOT NULL, reading TEXT NOT NULL, UNIQUE(stream, reading));
CREATE TABLE IF NOT EXISTS readings(
  series INTEGER NOT NULL, ts REAL NOT NULL, seq INTEGER NOT NULL, value REAL NOT NULL,
  PRIMARY KEY(series, ts, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY, unit TEXT, module TEXT, seq INTEGER, ts REAL NOT NULL, ts_utc TEXT NOT NULL,
  level TEXT NOT NULL, code TEXT NOT NULL, message TEXT NOT NULL, source TEXT NOT NULL,
  hist INTEGER NOT NULL DEFAULT 0, received_at REAL NOT NULL, run_id TEXT, data TEXT);
CREATE INDEX IF NOT EXISTS events_by_ts ON events(ts);
CREATE INDEX IF NOT EXISTS events_by_module ON events(unit, module, ts);
CREATE TABLE IF NOT EXISTS states(
  unit TEXT NOT NULL, module TEXT NOT NULL, payload TEXT NOT NULL, received_at REAL NOT NULL,
  PRIMARY KEY(unit, module));
CREATE TABLE IF NOT EXISTS runs(
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, units TEXT, meta TEXT NOT NULL, births TEXT NOT NULL,
  started_at REAL NOT NULL, ended_at REAL, baseline TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commands(
  id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts REAL NOT NULL, effect_id TEXT, unit TEXT, module TEXT,
  cmd TEXT, line TEXT NOT NULL);
"""
ROWS_PER_STATEMENT = 500
#: The unit and module derived signals are stored under (their reading is the signal's name).
DERIVED_UNIT, DERIVED_MODULE = "hub", "signals"


@dataclass(slots=True)
class Stream:
    """A module's message counters; `last_seq` is the highest seq stored."""

    id: int
    unit: str
    module: str
    last_seq: int | None = None
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    gaps: int = 0
    readings_lost: int = 0
    recovered: int = 0
    bad: int = 0
    last_problem: str | None = None

    def copy(self) -> Stream:
        return Stream(
            self.id,
            self.unit,
            self.module,
            self.last_seq,
            self.received,
            self.stored,
            self.duplicates,
            self.gaps,
            self.readings_lost,
            self.recovered,
            self.bad,
            self.last_problem,
        )

    def counts(self) -> dict[str, int]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "gaps": self.gaps,
            "readings_lost": self.readings_lost,
            "recovered": self.recovered,
            "bad": self.bad,
        }


COUNTERS = (
    "last_seq",
    "received",
    "stored",
    "duplicates",
    "gaps",
    "readings_lost",
    "recovered",
    "bad",
    "last_problem",
)


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    return db


class Store:
    """The writer's connection; every method runs on the writer thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = connect(path)
        self.db.executescript(SCHEMA)
        self.max_variables = self.db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._sql: dict[tuple[str, int], str] = {}
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self._series: dict[tuple[int, str], int] = {
            (stream, reading): sid
            for sid, stream, reading in self.db.execute("SELECT id, stream, reading FROM series")
        }

    def insert_rows(self, head: str, width: int, rows: list[tuple[Any, ...]]) -> None:
        """`head VALUES (...), (...), ...` for many rows per statement.

        `executemany` steps once per row, and each step lets go of the GIL: with the MQTT thread
        waiting for it, every row would cost two thread switches. A few hundred rows per
        statement make it a few switches per batch.
        """
        per = max(1, min(ROWS_PER_STATEMENT, self.max_variables // width))
        one = "(" + ",".join("?" * width) + ")"
        for i in range(0, len(rows), per):
            chunk = rows[i : i + per]
            sql = self._sql.get((head, len(chunk)))
            if sql is None:
                sql = f"{head} VALUES " + ",".join([one] * len(chunk))
                if len(self._sql) < 4096:
                    self._sql[(head, len(chunk))] = sql
            self.db.execute(sql, list(chain.from_iterable(chunk)))

    def load_streams(self) -> dict[tuple[str, str], Stream]:
        rows = self.db.execute(f"SELECT id, unit, module, {', '.join(COUNTERS)} FROM streams")
        return {(r[1], r[2]): Stream(*r) for r in rows}

    def new_stream(self, unit: str, module: str) -> Stream:
        row = self.db.execute(
            "INSERT INTO streams(unit, module) VALUES (?, ?) "
            "ON CONFLICT(unit, module) DO UPDATE SET unit=unit RETURNING id",
            (unit, module),
        ).fetchone()
        return Stream(row[0], unit, module)

    def series(self, stream: int, reading: str) -> int:
        sid = self._series.get((stream, reading))
        if sid is None:
            sid = self.db.execute(
                "INSERT INTO series(stream, reading) VALUES (?, ?) ON CONFLICT DO UPDATE "
                "SET reading=reading RETURNING id",
                (stream, reading),
            ).fetchone()[0]
            self._series[(stream, reading)] = sid
        return sid

    def forget_series(self) -> None:
        """After a rollback: ids handed out in the failed transaction do not exist."""
        self._series = {
            (stream, reading): sid
            for sid, stream, reading in self.db.execute("SELECT id, stream, reading FROM series")
        }

    def known(self, stream: int, seq: int) -> bool:
        return (
            self.db.execute("SELECT 1 FROM messages WHERE stream=? AND seq=?", (stream, seq)).fetchone()
            is not None
        )

    def save_streams(self, streams: list[Stream]) -> None:
        self.db.executemany(
            f"UPDATE streams SET {', '.join(f'{c}=?' for c in COUNTERS)} WHERE id=?",
            [
                (
                    s.last_seq,
                    s.received,
                    s.stored,
                    s.duplicates,
                    s.gaps,
                    s.readings_lost,
                    s.recovered,
                    s.bad,
                    s.last_problem,
                    s.id,
                )
                for s in streams
            ],
        )

    def close(self) -> None:
        try:
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # a full disk: the WAL stays, and the next open replays it
        self.db.close()
