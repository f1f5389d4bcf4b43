"""Reading the recorder's database: history downsampled into buckets, latest values, events.

Each calling thread gets its own read-only connection; WAL lets readers run
beside the writer, seeing what it committed (at most one batch, ~50 ms, old).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.recorder.errors import RecorderError


@dataclass(frozen=True)
class Bucket:
    """Readings with `ts` in [ts, ts + width): their min, max, count and mean."""

    ts: float
    min: float
    max: float
    count: int
    mean: float


class Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"  # percent-encoded: any folder name works
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def series_id(self, unit: str, module: str, reading: str) -> int | None:
        row = (
            self.db()
            .execute(
                "SELECT series.id FROM series JOIN streams ON series.stream = streams.id "
                "WHERE streams.unit=? AND streams.module=? AND series.reading=?",
                (unit, module, reading),
            )
            .fetchone()
        )
        return None if row is None else int(row[0])

    def history(
        self, unit: str, module: str, reading: str, start: float, end: float, points: int
    ) -> list[Bucket]:
        if not end > start:
            raise RecorderError(
                f"history of {unit}/{module}.{reading}: end ({end}) must be after start ({start})"
            )
        if not 1 <= points <= 1_000_000:
            raise RecorderError(
                f"history of {unit}/{module}.{reading}: points must be 1 to 1000000, got {points}"
            )
        sid = self.series_id(unit, module, reading)
        if sid is None:
            return []
        width = (end - start) / points
        rows = (
            self.db()
            .execute(
                "SELECT CAST((ts - ?1) / ?2 AS INTEGER) AS b, MIN(value), MAX(value), COUNT(*), AVG(value) "
                "FROM readings WHERE series = ?3 AND ts >= ?1 AND ts < ?4 GROUP BY b ORDER BY b",
                (start, width, sid, end),
            )
            .fetchall()
        )
        out: list[Bucket] = []
        for b, lo, hi, count, mean in rows:
            b = min(int(b), points - 1)  # a ts a rounding error short of `end`
            if out and out[-1].ts == start + b * width:
                prev = out.pop()
                total = prev.count + count
                out.append(
                    Bucket(
                        prev.ts,
                        min(prev.min, lo),
                        max(prev.max, hi),
                        total,
                        (prev.mean * prev.count + mean * count) / total,
                    )
                )
            else:
                out.append(Bucket(start + b * width, lo, hi, count, mean))
        return out

    def latest(self, unit: str, module: str) -> dict[str, Any] | None:
        """The newest reading of a module: {"ts", "seq", "values"}, or None."""
        db = self.db()
        best: tuple[float, int] | None = None
        values: dict[str, float] = {}
        rows = db.execute(
            "SELECT series.id, series.reading FROM series JOIN streams ON series.stream = streams.id "
            "WHERE streams.unit=? AND streams.module=?",
            (unit, module),
        ).fetchall()
        for sid, name in rows:
            row = db.execute(
                "SELECT ts, seq, value FROM readings WHERE series=? ORDER BY ts DESC, seq DESC LIMIT 1",
                (sid,),
            ).fetchone()
            if row is None:
                continue
            key = (row[0], row[1])
            if best is None or key > best:
                best, values = key, {name: row[2]}
            elif key == best:
                values[name] = row[2]
        return None if best is None else {"ts": best[0], "seq": best[1], "values": values}

    def state(self, unit: str, module: str) -> dict[str, Any] | None:
        row = (
            self.db()
            .execute("SELECT payload, received_at FROM states WHERE unit=? AND module=?", (unit, module))
            .fetchone()
        )
        return None if row is None else {"payload": json.loads(row[0]), "received_at": row[1]}

    def events(
        self,
        *,
        unit: str | None = None,
        module: str | None = None,
        code: str | None = None,
        level: str | None = None,
        source: str | None = None,
        run_id: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Events oldest first, filtered by whichever arguments are given."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("unit", unit),
            ("module", module),
            ("code", code),
            ("level", level),
            ("source", source),
            ("run_id", run_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if start is not None:
            where.append("ts >= ?")
            args.append(start)
        if end is not None:
            where.append("ts < ?")
            args.append(end)
        sql = (
            "SELECT unit, module, seq, ts, ts_utc, level, code, message, source, hist, received_at, run_id, "
            "data FROM events" + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY ts, id LIMIT ?"
        )
        rows = self.db().execute(sql, (*args, limit)).fetchall()
        keys = (
            "unit",
            "module",
            "seq",
            "ts",
            "ts_utc",
            "level",
            "code",
            "message",
            "source",
            "hist",
            "received_at",
            "run_id",
            "data",
        )
        out = []
        for row in rows:
            item = dict(zip(keys, row, strict=True))
            item["hist"] = bool(item["hist"])
            item["data"] = json.loads(item["data"]) if item["data"] else {}
            out.append(item)
        return out

    def seqs(self, unit: str, module: str) -> list[int]:
        """Every seq stored for a module, ascending (for checks that nothing was lost)."""
        rows = self.db().execute(
            "SELECT seq FROM messages JOIN streams ON messages.stream = streams.id "
            "WHERE streams.unit=? AND streams.module=? ORDER BY seq",
            (unit, module),
        )
        return [r[0] for r in rows]

    def run_row(self, run_id: str) -> tuple[str, float | None] | None:
        row = self.db().execute("SELECT kind, ended_at FROM runs WHERE id=?", (run_id,)).fetchone()
        return None if row is None else (row[0], row[1])
