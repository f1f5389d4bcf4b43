"""The session log on disk: tinydb tables `sessions`, `events` and `files` in one crash-safe file.

`sessions` holds one row per session (its latest state and upload figures),
`events` one row per change (START, END, UPLOADED, VERIFIED, RECOVERED,
ERROR) as NexusLIMS's session_log, and `files` the upload log: the latest
row the uploader reported per (session, path). A session's new state and its
event are written together, in one atomic write.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

from hub.sessions.model import Session, SessionEventKind, SessionSource, SessionState, UploadProgress
from hub.sessions.storage import SafeJSONStorage, SessionLogCorrupt

LOG_NAME = "session_log.json"


def session_row(session: Session, upload: UploadProgress | None = None) -> dict[str, Any]:
    row = session.to_json(upload)
    row["recorded_dir"] = None if session.recorded_dir is None else str(session.recorded_dir)
    return row


def session_of(row: Mapping[str, Any], path: Path) -> Session:
    """A session from its row; SessionLogCorrupt naming the file when the row is not one."""
    try:
        ended_by = row.get("ended_by")
        recorded = row.get("recorded_dir")
        return Session(
            id=str(row["id"]), unit=str(row["unit"]), experiment=row.get("experiment"), user=row.get("user"),
            started_at=str(row["started_at"]), started_by=SessionSource(row["started_by"]),
            state=SessionState(row["state"]), ended_at=row.get("ended_at"),
            ended_by=None if ended_by is None else SessionSource(ended_by), reason=row.get("reason"),
            recorded_dir=None if recorded is None else Path(recorded))
    except (KeyError, ValueError, TypeError) as exc:
        raise SessionLogCorrupt(path, f"session row {dict(row).get('id')!r} is not a session "
                                      f"({type(exc).__name__}: {exc})") from None


def progress_of(row: Mapping[str, Any]) -> UploadProgress:
    upload = row.get("upload")
    if not isinstance(upload, Mapping):
        return UploadProgress()
    try:
        return UploadProgress(int(upload.get("files_pending", 0)), int(upload.get("files_done", 0)),
                              int(upload.get("bytes_pending", 0)), int(upload.get("bytes_done", 0)),
                              float(upload.get("rate_bps", 0.0)), int(upload.get("errors", 0)),
                              upload.get("last_scan_at"))
    except (TypeError, ValueError):
        return UploadProgress()


class SessionLog:
    """`SessionLog(data_dir / LOG_NAME)`: SessionLogCorrupt at once when the file is damaged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.storage = SafeJSONStorage(path)
        self.db = TinyDB(storage=lambda: self.storage)
        self.sessions = self.db.table("sessions", cache_size=0)
        self.event_rows = self.db.table("events", cache_size=0)
        self.files = self.db.table("files", cache_size=0)
        self._cache: dict[str, Session] = {}
        self._uploads: dict[str, UploadProgress] = {}
        for row in self.sessions.all():
            session = session_of(row, path)
            self._cache[session.id] = session
            self._uploads[session.id] = progress_of(row)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        with self.storage.batch():
            yield

    # ---- sessions -----------------------------------------------------------------------------
    def all(self) -> list[Session]:
        """Every session, oldest start first."""
        return sorted(self._cache.values(), key=lambda s: s.started_at)

    def get(self, session_id: str) -> Session | None:
        return self._cache.get(session_id)

    def upload(self, session_id: str) -> UploadProgress:
        """The upload figures stored with the session (the last ones seen)."""
        return self._uploads.get(session_id, UploadProgress())

    def save(self, session: Session, kind: SessionEventKind | None = None, message: str = "",
             at: str | None = None, data: Mapping[str, Any] | None = None,
             upload: UploadProgress | None = None) -> None:
        """Store the session's new row and, with `kind`, its event: one write."""
        if upload is not None:
            self._uploads[session.id] = upload
        row = session_row(session, self._uploads.get(session.id))
        with self.batch():
            self.sessions.upsert(row, Query().id == session.id)
            if kind is not None:
                self._event(session, kind, message, at or session.started_at, data)
        self._cache[session.id] = session

    # ---- events and files ---------------------------------------------------------------------
    def event(self, session: Session, kind: SessionEventKind, message: str, at: str,
              data: Mapping[str, Any] | None = None) -> None:
        self._event(session, kind, message, at, data)

    def _event(self, session: Session, kind: SessionEventKind, message: str, at: str,
               data: Mapping[str, Any] | None) -> None:
        self.event_rows.insert({"session_id": session.id, "unit": session.unit, "kind": kind.value, "ts": at,
                                "message": message, **({"data": dict(data)} if data else {})})

    def events(self, session_id: str) -> list[dict[str, Any]]:
        return [dict(row) for row in self.event_rows.search(Query().session_id == session_id)]

    def record_files(self, rows: list[tuple[str, dict[str, Any], str]]) -> None:
        """(session_id, the uploader's row, ts) each: the file's latest row and its event, one write."""
        with self.batch():
            for session_id, row, at in rows:
                path = str(row.get("path", ""))
                entry = {**row, "session_id": session_id, "path": path, "logged_at": at}
                where = (Query().session_id == session_id) & (Query().path == path)
                self.files.upsert(entry, where)
                session = self._cache.get(session_id)
                if session is not None:
                    failed = row.get("error")
                    kind = SessionEventKind.ERROR if failed else SessionEventKind.UPLOADED
                    message = f"{path}: {failed}" if failed else f"{path} uploaded"
                    data = {"path": path, **({"error": failed} if failed else {})}
                    self._event(session, kind, message, at, data)

    def file_rows(self, session_id: str) -> list[dict[str, Any]]:
        return [dict(row) for row in self.files.search(Query().session_id == session_id)]
