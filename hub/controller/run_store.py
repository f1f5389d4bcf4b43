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
from pathlib import Path
from typing import Any

from lecis.errors import LabedgeError

STATE_FORMAT = 1


class RunStateCorrupt(LabedgeError):
    """The controller's saved state cannot be read; nothing was overwritten."""


class RunStateInUse(LabedgeError):
    """The saved state is of another run that has not ended; it is not replaced by a new run."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: the old content or the new survives a crash, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


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
        self._ensure()
        body = {"format": STATE_FORMAT, "run_id": run_id, "started_at": started_at, "snapshot": snapshot}
        write_atomic(self.state_path, json.dumps(body, separators=(",", ":")).encode())

    def clear_state(self, archive_as: str) -> Path | None:
        """Move a finished run's state aside (state.ARCHIVE.json) so the next start begins a new run."""
        if not self.state_path.exists():
            return None
        target = self.dir / f"state.{archive_as}.json"
        os.replace(self.state_path, target)
        _fsync_dir(self.dir)
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
