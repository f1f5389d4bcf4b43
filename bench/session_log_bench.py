"""The session log's writes: upload-log rows as the uploader reports them, beside tinydb's own per-row way.

Run: `.venv/bin/python -m bench.session_log_bench [--rows 10000] [--batch 100] [--tinydb-rows 3000]`.

1. ours: `--rows` per-file rows through hub.sessions.log.SessionLog.record_files in
   batches of `--batch` (as the service gathers them), each batch one atomic,
   fsynced write of the session's upload log and one of the main log; then one
   session state change with all of them present.
2. tinydb: the same rows, `--tinydb-rows` of them, each upserted by path through a
   tinydb Table over the same SafeJSONStorage, inside the same batches (its
   read and query of the whole table per row is what grows with the square).
Figures: seconds, rows/s, and the per-row cost of tinydb's way over ours.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tinydb import Query, TinyDB

from hub.sessions.log import SessionLog
from hub.sessions.model import Session, SessionSource, SessionState
from hub.sessions.storage import SafeJSONStorage

AT = "2026-03-01T12:00:00.000Z"


def row(i: int) -> dict[str, object]:
    return {"path": f"run/{i // 100:04d}/file-{i:06d}.csv", "status": "uploaded", "size": 10_240,
            "md5": f"{i:032x}", "generation": 1_700_000_000_000_000 + i, "uploaded_at": AT}


def ours(folder: Path, rows: int, batch: int) -> tuple[float, float]:
    log = SessionLog(folder / "session_log.json")
    session = Session("s-1", "bench-1", None, None, "2026-03-01T12:00:00.000Z", SessionSource.CLI)
    log.save(session)
    began = time.perf_counter()
    for start in range(0, rows, batch):
        log.record_files([("s-1", row(i), AT) for i in range(start, min(rows, start + batch))])
    elapsed = time.perf_counter() - began
    began = time.perf_counter()
    log.save(Session(**{**session.__dict__, "state": SessionState.CLOSING}))
    save = time.perf_counter() - began
    log.close()
    return elapsed, save


def tinydb_way(folder: Path, rows: int, batch: int) -> float:
    storage = SafeJSONStorage(folder / "tinydb.json")
    db = TinyDB(storage=lambda: storage)
    files = db.table("files", cache_size=0)
    began = time.perf_counter()
    for start in range(0, rows, batch):
        with storage.batch():
            for i in range(start, min(rows, start + batch)):
                entry = row(i)
                files.upsert(entry, Query().path == entry["path"])
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--tinydb-rows", type=int, default=3_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        elapsed, save = ours(Path(tmp), args.rows, args.batch)
        baseline = tinydb_way(Path(tmp), args.tinydb_rows, args.batch)
    ours_row = elapsed / args.rows
    tinydb_row = baseline / args.tinydb_rows
    print(f"ours:   {args.rows:,} upload-log rows in batches of {args.batch}: {elapsed:.2f} s "
          f"({args.rows / elapsed:,.0f} rows/s); a session change with them present: {save * 1000:.1f} ms")
    print(f"tinydb: {args.tinydb_rows:,} rows upserted one by one: {baseline:.2f} s "
          f"({args.tinydb_rows / baseline:,.0f} rows/s)")
    print(f"per row, tinydb's way costs {tinydb_row / ours_row:.0f}x ours at {args.tinydb_rows:,} rows "
          "(and grows with the rows already there)")


if __name__ == "__main__":
    main()
