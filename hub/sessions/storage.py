"""A tinydb Storage that survives power loss, and refuses a damaged file instead of starting afresh.

Each write goes to a temporary file beside the log, is fsynced, renamed over
the log and the folder fsynced: after a crash the file holds the old version
or the new one, never a mix. A file that cannot be read or is not a tinydb
document raises SessionLogCorrupt naming it and how to recover; nothing ever
replaces it with an empty log. `batch()` gathers several writes into one.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from lecis.atomic_file import write_atomic
from lecis.errors import LabedgeError

TMP_SUFFIX = ".tmp"


class SessionLogCorrupt(LabedgeError):
    """The session log (or another file of this storage) cannot be read; the hub refuses to start.

    `recovery` says what moving the file aside costs (the default is the main session log's)."""

    def __init__(self, path: Path, why: str, recovery: str | None = None) -> None:
        self.path = path
        self.why = why
        lost = recovery or ("to start with an empty session log; the sessions it held are then forgotten "
                            "(their files stay in the data folder and the bucket)")
        super().__init__(
            f"{path}: the session log cannot be read ({why}). The hub does not start, so that nothing "
            f"in it is lost. Restore the file from a backup, or move it aside (mv {path} {path}.damaged) "
            f"{lost}")


def _check_document(value: Any) -> str | None:
    """Why `value` is not a tinydb document ({table: {doc_id: {...}}}), or None."""
    if not isinstance(value, dict):
        return f"the top level is a JSON {type(value).__name__}, not an object of tables"
    for table, docs in value.items():
        if not isinstance(docs, dict):
            return f"table {table!r} is a JSON {type(docs).__name__}, not an object of documents"
        for doc_id, doc in docs.items():
            if not isinstance(doc, dict):
                return f"document {doc_id!r} of table {table!r} is not an object"
    return None


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    return {table: {doc_id: dict(doc) for doc_id, doc in docs.items()} for table, docs in data.items()}


def read_document(path: Path) -> dict[str, Any] | None:
    """The tinydb document in `path` (None when there is no file), touching nothing; SessionLogCorrupt
    naming the file and what is wrong when it is damaged or unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SessionLogCorrupt(path, f"{type(exc).__name__}: {exc.strerror or exc}") from None
    if not raw:
        raise SessionLogCorrupt(path, "the file is empty; a session log is never written empty")
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SessionLogCorrupt(path, f"not UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise SessionLogCorrupt(path, f"not JSON: {exc.msg} at {where}") from None
    except RecursionError:
        raise SessionLogCorrupt(path, "not a session log: nested too deeply") from None
    why = _check_document(value)
    if why is not None:
        raise SessionLogCorrupt(path, f"not a session log: {why}")
    return value  # type: ignore[no-any-return]


class SafeJSONStorage(Storage):
    """`TinyDB(path, storage=SafeJSONStorage)`: atomic, durable writes; a damaged file is refused."""

    def __init__(self, path: str | Path, create_dirs: bool = True, **_: Any) -> None:
        self.path = Path(path)
        if create_dirs:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + TMP_SUFFIX)
        # A temporary file left by a crash mid-write is an unfinished write: the log itself is whole.
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()
        self._cache: dict[str, Any] | None = None
        self._batching = 0
        self._dirty = False
        self.writes = 0  # files written (a batch counts once)
        self._load()

    def _load(self) -> None:
        self._cache = read_document(self.path)

    def read(self) -> dict[str, Any] | None:
        # tinydb changes the tables and documents it reads in place before writing them back: each
        # document is handed out as a copy (one level: tinydb replaces fields, it never edits inside one).
        if self._cache is None:
            return None
        return _copy(self._cache)

    def write(self, data: dict[str, Any]) -> None:
        self._cache = _copy(data)
        if self._batching:
            self._dirty = True
            return
        self._flush()

    def _flush(self) -> None:
        # ASCII with escapes: a lone surrogate in a string can still be written and read back.
        write_atomic(self.path, json.dumps(self._cache, separators=(",", ":")).encode("ascii"), mode=0o640)
        self._dirty = False
        self.writes += 1

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Writes inside the block are kept in memory and written once, atomically, at its end."""
        self._batching += 1
        try:
            yield
        finally:
            self._batching -= 1
            if not self._batching and self._dirty:
                self._flush()

    def close(self) -> None:
        if self._dirty:
            self._flush()
