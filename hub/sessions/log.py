"""The session log on disk: tinydb documents in crash-safe files, held in memory with indexes.

`data_dir/session_log.json` has the tables `sessions` (one row per session:
its latest state and upload figures) and `events` (one row per change:
START, END, UPLOADED, VERIFIED, RECOVERED, ERROR, as NexusLIMS's
session_log). The per-file upload log of each session is its own file,
`data_dir/session_uploads/SESSION_ID.json` (table `files`, the uploader's
latest row per path), so that a session with many files never makes the
main log heavy. Both are tinydb's format (`TinyDB(path, storage=
SafeJSONStorage)` reads them); the log writes whole documents itself, one
atomic write per change, because tinydb's per-operation read and query of
the whole file grows with the square of the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hub.sessions.model import Session, SessionEventKind, SessionSource, SessionState, UploadProgress
from hub.sessions.storage import SafeJSONStorage, SessionLogCorrupt, read_document

LOG_NAME = "session_log.json"
UPLOADS_DIR = "session_uploads"
UPLOADED_LISTED = 20  # paths named in one UPLOADED event; the count says how many there were
UPLOADS_RECOVERY = ("to start that session's upload log afresh; the record of which of its files went up is "
                    "then lost (the files stay in the data folder and the bucket, and the uploader's own "
                    "manifest still knows what it sent)")


def uploads_corrupt(exc: SessionLogCorrupt) -> SessionLogCorrupt:
    """The same damage, with what moving a session's upload log aside costs."""
    return SessionLogCorrupt(exc.path, exc.why, UPLOADS_RECOVERY)


def check_log(path: Path) -> int:
    """What the hub reads at start, read without changing anything (`labedge hub run --check`, safe beside
    a running hub): the number of sessions; SessionLogCorrupt naming the first damaged file."""
    data = read_document(path) or {}
    sessions = data.get("sessions", {})
    for row in sessions.values():
        session = session_of(row, path)
        try:
            read_document(path.parent / UPLOADS_DIR / f"{session.id}.json")
        except SessionLogCorrupt as exc:
            raise uploads_corrupt(exc) from None
    return len(sessions)


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


class _Document:
    """One tinydb file held in memory: tables of {doc_id: row}, written whole and atomically."""

    def __init__(self, path: Path, tables: tuple[str, ...]) -> None:
        self.path = path
        self.storage = SafeJSONStorage(path)  # SessionLogCorrupt when damaged
        self.unsaved = False  # changed in memory, the last write failed: written with the next one
        data = self.storage.read() or {}
        self.tables: dict[str, dict[str, dict[str, Any]]] = {t: dict(data.get(t, {})) for t in tables}
        for name, docs in data.items():  # tables of a later version are kept as they are
            self.tables.setdefault(name, dict(docs))
        self.next_id = {t: max((int(i) for i in docs if i.isdigit()), default=0) + 1
                        for t, docs in self.tables.items()}

    def insert(self, table: str, row: dict[str, Any]) -> str:
        doc_id = str(self.next_id[table])
        self.next_id[table] += 1
        self.tables[table][doc_id] = row
        return doc_id

    def save(self) -> None:
        self.unsaved = True
        self.storage.write(self.tables)
        self.unsaved = False

    def close(self) -> None:
        self.storage.close()


class SessionLog:
    """`SessionLog(data_dir / LOG_NAME)`: SessionLogCorrupt at once when the file is damaged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.uploads_dir = path.parent / UPLOADS_DIR
        self.doc = _Document(path, ("sessions", "events"))
        self._sessions: dict[str, Session] = {}
        self._session_ids: dict[str, str] = {}  # session id -> doc id
        self._uploads: dict[str, UploadProgress] = {}
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._files: dict[str, _Document] = {}
        self._file_ids: dict[str, dict[str, str]] = {}  # session id -> path -> doc id
        # Oldest accepted first (the doc ids' order), not by started_at: a clock set back, or a queued press
        # given its own time, must never make an older session look like the unit's newest.
        for doc_id, row in sorted(self.doc.tables["sessions"].items(), key=lambda item: _order(item[0])):
            session = session_of(row, path)
            self._sessions[session.id] = session
            self._session_ids[session.id] = doc_id
            self._uploads[session.id] = progress_of(row)
        for row in self.doc.tables["events"].values():
            self._events.setdefault(str(row.get("session_id")), []).append(row)
        self._check_upload_logs()

    def _check_upload_logs(self) -> None:
        """Every session's upload log read now: a damaged one refuses the start like the main log (it
        would otherwise fail at its session's next file, and the record of what went up with it)."""
        for session in self._sessions.values():
            path = self.uploads_dir / f"{session.id}.json"
            try:
                if session.state in (SessionState.OPEN, SessionState.CLOSING):
                    if path.exists():
                        self._files_of(session.id)  # kept open: its session goes on writing it
                else:
                    read_document(path)
            except SessionLogCorrupt as exc:
                self.close()
                raise uploads_corrupt(exc) from None

    @property
    def storage(self) -> SafeJSONStorage:
        return self.doc.storage

    def close(self) -> None:
        self.doc.close()
        for files in self._files.values():
            files.close()

    # ---- sessions -----------------------------------------------------------------------------
    def all(self) -> list[Session]:
        """Every session, in the order their starts were accepted."""
        return list(self._sessions.values())

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def upload(self, session_id: str) -> UploadProgress:
        """The upload figures stored with the session (the last ones seen)."""
        return self._uploads.get(session_id, UploadProgress())

    def save(self, session: Session, kind: SessionEventKind | None = None, message: str = "",
             at: str | None = None, data: Mapping[str, Any] | None = None,
             upload: UploadProgress | None = None) -> None:
        """Store the session's new row and, with `kind`, its event: one write. When the write fails
        (disk full...) nothing changes, in memory either, and the error goes to the caller."""
        undo = self._undo_point(session.id)
        try:
            self.stage(session, kind, message, at, data, upload)
            self.doc.save()
        except BaseException:
            self._roll_back(session.id, undo)
            raise

    def _undo_point(self, session_id: str) -> tuple[Any, ...]:
        tables = self.doc.tables
        return (dict(tables["sessions"]), dict(tables["events"]), dict(self.doc.next_id),
                self._sessions.get(session_id), self._uploads.get(session_id),
                self._session_ids.get(session_id), len(self._events.get(session_id, [])))

    def _roll_back(self, session_id: str, undo: tuple[Any, ...]) -> None:
        sessions, events, next_id, session, upload, doc_id, count = undo
        self.doc.tables["sessions"], self.doc.tables["events"], self.doc.next_id = sessions, events, next_id
        for store, value in ((self._sessions, session), (self._uploads, upload), (self._session_ids, doc_id)):
            if value is None:
                store.pop(session_id, None)
            else:
                store[session_id] = value
        if session_id in self._events:
            del self._events[session_id][count:]

    def stage(self, session: Session, kind: SessionEventKind | None = None, message: str = "",
              at: str | None = None, data: Mapping[str, Any] | None = None,
              upload: UploadProgress | None = None) -> None:
        """`save` without the write (the next write takes it)."""
        if upload is not None:
            self._uploads[session.id] = upload
        row = session_row(session, self._uploads.get(session.id))
        doc_id = self._session_ids.get(session.id)
        if doc_id is None:
            self._session_ids[session.id] = self.doc.insert("sessions", row)
        else:
            self.doc.tables["sessions"][doc_id] = row
        self._sessions[session.id] = session
        if kind is not None:
            self._event(session, kind, message, at or session.started_at, data)

    # ---- events -------------------------------------------------------------------------------
    def event(self, session: Session, kind: SessionEventKind, message: str, at: str,
              data: Mapping[str, Any] | None = None) -> None:
        self._event(session, kind, message, at, data)
        self.doc.save()

    def _event(self, session: Session, kind: SessionEventKind, message: str, at: str,
               data: Mapping[str, Any] | None) -> None:
        row = {"session_id": session.id, "unit": session.unit, "kind": kind.value, "ts": at,
               "message": message, **({"data": dict(data)} if data else {})}
        self.doc.insert("events", row)
        self._events.setdefault(session.id, []).append(row)

    def events(self, session_id: str) -> list[dict[str, Any]]:
        return [dict(row) for row in self._events.get(session_id, [])]

    # ---- the per-file upload log --------------------------------------------------------------
    def _files_of(self, session_id: str) -> _Document:
        files = self._files.get(session_id)
        if files is None:
            files = _Document(self.uploads_dir / f"{session_id}.json", ("files",))
            self._files[session_id] = files
            self._file_ids[session_id] = {str(row.get("path")): doc_id
                                          for doc_id, row in files.tables["files"].items()}
        return files

    def record_files(self, rows: list[tuple[str, dict[str, Any], str]]) -> None:
        """(session_id, the uploader's row, ts) each: the files' latest rows, one write per session's file;
        then one UPLOADED event per session for the files uploaded and an ERROR event per file that failed."""
        by_session: dict[str, list[tuple[dict[str, Any], str]]] = {}
        for session_id, row, at in rows:
            if session_id in self._sessions:
                by_session.setdefault(session_id, []).append((row, at))
        write_error: OSError | None = None
        for session_id, files in self._files.items():  # a write that failed before: its rows are in memory
            if files.unsaved and session_id not in by_session:
                by_session[session_id] = []
        for session_id, items in by_session.items():
            files = self._files_of(session_id)
            ids = self._file_ids[session_id]
            uploaded: list[str] = []
            size = 0
            session = self._sessions[session_id]
            for row, at in items:
                path = str(row.get("path", ""))
                entry = {**row, "session_id": session_id, "path": path, "logged_at": at}
                doc_id = ids.get(path)
                if doc_id is None:
                    ids[path] = files.insert("files", entry)
                else:
                    files.tables["files"][doc_id] = entry
                failed = row.get("error")
                if failed:
                    self._event(session, SessionEventKind.ERROR, f"{path}: {failed}", at,
                                {"path": path, "error": failed, "status": row.get("status")})
                else:
                    uploaded.append(path)
                    size += row["size"] if isinstance(row.get("size"), int) else 0
            if uploaded:
                self._uploaded(session, uploaded, size, items[-1][1])
            try:
                files.save()
            except OSError as exc:  # kept in memory (unsaved) and written with the next rows or retry
                write_error = write_error or exc
        if by_session or self.doc.unsaved:
            self.doc.save()
        if write_error is not None:
            raise write_error

    @property
    def unsaved(self) -> bool:
        """Rows held in memory because their write failed (the disk full...)."""
        return self.doc.unsaved or any(files.unsaved for files in self._files.values())

    def _uploaded(self, session: Session, paths: list[str], size: int, at: str) -> None:
        count = len(paths)
        shown = ", ".join(paths[:UPLOADED_LISTED]) + (" ..." if count > UPLOADED_LISTED else "")
        self._event(session, SessionEventKind.UPLOADED,
                    f"{count} file{'s' if count != 1 else ''} uploaded ({size} bytes): {shown}", at,
                    {"count": count, "bytes": size, "paths": paths[:UPLOADED_LISTED]})

    def file_rows(self, session_id: str) -> list[dict[str, Any]]:
        """The session's upload log (SessionLogCorrupt naming its file when that is damaged)."""
        if session_id not in self._sessions:
            return []
        path = self.uploads_dir / f"{session_id}.json"
        if session_id not in self._files and not path.exists():
            return []
        return [dict(row) for row in self._files_of(session_id).tables["files"].values()]


def _order(doc_id: str) -> tuple[int, str]:
    return (int(doc_id), "") if doc_id.isdigit() else (1 << 62, doc_id)
