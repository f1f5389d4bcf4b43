"""Crash-safe files of the controller under data_dir/controller/.

- `state.json`: the run being controlled (run id, start, script version) and the
  engine's snapshot; replaced atomically (write a temporary file, fsync, rename,
  fsync the directory), so after a crash it is the old state or the new, never half.
- `versions/NNNN.yaml`: every script version that was accepted, as written.
- `versions.jsonl`: one line per version: {"version", "ts", "author", "diff"}.

A state file that cannot be read is reported (RunStateCorrupt, with the path
and what to do) and never silently replaced: the hub refuses to start a new
run over it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lecis.atomic_file import fsync_dir, write_atomic
from lecis.errors import LabedgeError

STATE_FORMAT = 1


class RunStateCorrupt(LabedgeError):
    """The controller's saved state cannot be read; nothing was overwritten."""


class RunStateInUse(LabedgeError):
    """The saved state is of another run that has not ended; it is not replaced by a new run."""


class RunStore:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.state_path = directory / "state.json"
        self.versions_dir = directory / "versions"
        self.log_path = directory / "versions.jsonl"

    def _ensure(self) -> None:
        self.versions_dir.mkdir(parents=True, exist_ok=True)

    # --- state ---------------------------------------------------------------

    def load_state(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none; raises RunStateCorrupt when it is unreadable."""
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return None
        what = f"{self.state_path}: controller state unreadable"
        hint = ("; the run cannot resume from it. Move the file aside to start a new run "
                "(the script versions stay in versions/)")
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunStateCorrupt(f"{what} ({len(raw)} bytes, {exc}){hint}") from None
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise RunStateCorrupt(f"{what} (not a format {STATE_FORMAT} state object){hint}")
        for key in ("run_id", "started_at", "snapshot"):
            if key not in data:
                raise RunStateCorrupt(f"{what} (no {key!r}){hint}")
        return data

    def save_state(self, run_id: str, started_at: float, snapshot: dict[str, Any]) -> None:
        self.write_state(self.state_bytes(run_id, started_at, snapshot))

    @staticmethod
    def state_bytes(run_id: str, started_at: float, snapshot: dict[str, Any]) -> bytes:
        """The state file's content (serialised by the caller, so the snapshot is read where it lives)."""
        body = {"format": STATE_FORMAT, "run_id": run_id, "started_at": started_at, "snapshot": snapshot}
        return json.dumps(body, separators=(",", ":")).encode()

    def write_state(self, data: bytes) -> None:
        self._ensure()
        write_atomic(self.state_path, data)

    def clear_state(self, archive_as: str) -> Path | None:
        """Move a finished run's state aside (state.ARCHIVE.json) so the next start begins a new run."""
        if not self.state_path.exists():
            return None
        target = self.dir / f"state.{archive_as}.json"
        os.replace(self.state_path, target)
        fsync_dir(self.dir)
        return target

    # --- versions --------------------------------------------------------------

    def version_path(self, version: int) -> Path:
        return self.versions_dir / f"{version:04d}.yaml"

    def add_version(self, version: int, text: str, author: str, ts: float, diff: str) -> None:
        self._ensure()
        write_atomic(self.version_path(version), text.encode())
        line = json.dumps({"version": version, "ts": ts, "author": author, "diff": diff}) + "\n"
        with open(self.log_path, "ab+") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() > 0:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":  # a line torn by a crash stays as it is, on its own line
                    fh.write(b"\n")
            fh.write(line.encode())
            fh.flush()
            os.fsync(fh.fileno())

    def version_text(self, version: int) -> str:
        try:
            return self.version_path(version).read_text()
        except FileNotFoundError:
            raise RunStateCorrupt(f"{self.version_path(version)}: script version {version} is missing") \
                from None

    def versions(self) -> list[dict[str, Any]]:
        """Every version's record, in order; a line torn by a crash is reported in place as {"torn": line}."""
        if not self.log_path.exists():
            return []
        out: list[dict[str, Any]] = []
        for n, line in enumerate(self.log_path.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"torn": line, "line": n})
        return out


class StateSaver:
    """Writes the store's state file, now (the caller waits) or on a thread of its own (it does not).

    Never two writes at once (one lock around every write), and never an older state over a newer
    one: every state carries a generation (given in order by the one caller, the runner's loop), a
    write whose generation is not above the last written one is dropped, and of the states handed to
    the thread while it writes only the latest is written. The runner uses `now` for write-ahead
    saves (a command is in the file before it is sent) and `later` for the rest, e.g. a command's
    answer: the units keep their replies, so a command whose answer did not reach the file before a
    crash is re-sent with its id on resume and answered again, not carried out again.
    """

    def __init__(self, store: RunStore, on_done: Callable[[int, OSError | None], None] | None = None) -> None:
        self.store = store
        self.on_done = on_done  # called on the writer's thread after each background write
        self._lock = threading.Lock()  # held for each write
        self._cond = threading.Condition()
        self._pending: tuple[int, bytes] | None = None
        self._written = 0  # generation of the state in the file (or being replaced by a newer one)
        self._thread: threading.Thread | None = None
        self._closed = False

    def now(self, generation: int, data: bytes) -> None:
        """Write at once, after a background write in progress; an older pending one is then dropped."""
        with self._lock:
            self._write(generation, data)
        with self._cond:
            if self._pending is not None and self._pending[0] <= generation:
                self._pending = None

    def later(self, generation: int, data: bytes) -> None:
        """Hand a state to the writer's thread; a state not yet taken is replaced (the latest wins).
        After `close` (the run has ended, an input came late) it is written at once instead."""
        with self._cond:
            closed = self._closed
        if closed:
            self.now(generation, data)
            return
        with self._cond:
            if self._pending is None or self._pending[0] < generation:
                self._pending = (generation, data)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="controller-state", daemon=True)
                self._thread.start()
            self._cond.notify()

    @property
    def idle(self) -> bool:
        with self._cond:
            return self._pending is None

    def close(self) -> None:
        """Write what is pending, then stop the thread (waits for it)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _write(self, generation: int, data: bytes) -> bool:
        if generation <= self._written:
            return False
        self.store.write_state(data)  # OSError to the caller; _written stays, the next write retries
        self._written = generation
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                generation, data = self._pending
                self._pending = None
            error: OSError | None = None
            with self._lock:
                try:
                    self._write(generation, data)
                except OSError as exc:
                    error = exc
            if self.on_done is not None:
                self.on_done(generation, error)
