"""Append-only files cut into hourly chunks: a closed chunk never changes, the open one only grows.

A stream (`units/bench-1/ph1`, `events`, `derived/our`) is written to
`NAME.YYYY-MM-DDTHH.EXT` for the UTC hour of the recorder's clock at the time
of writing, with further parts `NAME.YYYY-MM-DDTHH_02.EXT` when a CSV header
must change inside the hour. A batch of whole lines goes out in one `write`;
if it fails (a full disk), the file is cut back to its size before the batch,
so a failure never leaves part of a line. On opening a chunk that exists, a
torn last line (a crash mid-write) is cut back to the last newline, reported
through `on_repair`.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

CHUNK_NAME = re.compile(
    r"^(?P<name>.+)\.(?P<hour>\d{4}-\d\d-\d\dT\d\d)(?:_(?P<part>\d{2,}))?\.(?P<ext>[a-z]+)$"
)
Repair = Callable[[Path, int], None]


def hour_key(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H")


def chunk_path(directory: Path, name: str, hour: str, part: int, ext: str) -> Path:
    suffix = "" if part == 1 else f"_{part:02d}"
    return directory / f"{name}.{hour}{suffix}.{ext}"


def chunks_of(directory: Path, name: str, ext: str) -> list[tuple[str, int, Path]]:
    """The chunks of one stream, oldest first: (hour, part, path)."""
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            m = CHUNK_NAME.match(path.name)
            if m and m["name"] == name and m["ext"] == ext:
                found.append((m["hour"], int(m["part"] or 1), path))
    return sorted(found)


def csv_line(fields: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue()


class FileOps:
    """The system calls chunks use; tests hand in one that fails like a full disk."""

    def open_append(self, path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)


def repair_torn(path: Path, ops: FileOps, on_repair: Repair | None) -> None:
    """Cut a last line without its newline (a crash mid-write); report how many bytes went."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        keep, step = 0, 65536
        pos = size
        while pos > 0:
            start = max(0, pos - step)
            f.seek(start)
            block = f.read(pos - start)
            at = block.rfind(b"\n")
            if at >= 0:
                keep = start + at + 1
                break
            pos = start
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        ops.truncate(fd, keep)
    finally:
        os.close(fd)
    if on_repair is not None:
        on_repair(path, size - keep)


def last_line(path: Path) -> bytes | None:
    """The last whole line of a file (after repair), without its newline."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 65536))
        lines = f.read().splitlines()
    return lines[-1] if lines else None


def first_line(path: Path) -> str | None:
    with path.open("rb") as f:
        line = f.readline()
    return line.decode("utf-8", "replace") if line.endswith(b"\n") else None


class ChunkStream:
    """One stream of chunk files; `header` (a CSV header line) starts every chunk when given."""

    def __init__(
        self,
        directory: Path,
        name: str,
        ext: str,
        ops: FileOps,
        header: str | None = None,
        on_repair: Repair | None = None,
    ) -> None:
        self.directory, self.name, self.ext, self.ops = directory, name, ext, ops
        self.header = header
        self.on_repair = on_repair
        self.hour: str | None = None
        self.part = 1
        self.path: Path | None = None
        self._fd: int | None = None
        self.size = 0
        self._pending: list[str] = []
        self._mark: tuple[int, int] | None = None  # (fd, size) before the batch now being written
        self.dirty = False
        latest = chunks_of(directory, name, ext)
        if latest:  # never write into a chunk older than the newest one (a clock set back)
            self.hour, self.part, _ = latest[-1]

    def add(self, line: str) -> None:
        self._pending.append(line)

    def set_header(self, header: str) -> None:
        """A new header takes effect in a new part of the current hour (or the next hour's chunk)."""
        if header != self.header:
            self.header = header
            if self._fd is not None:
                self._close()
                self.part += 1

    def write(self, now: float) -> None:
        """Write what was added, as one batch; raises OSError with the file cut back to before it."""
        if not self._pending:
            return
        self._target(hour_key(now))
        assert self._fd is not None
        self._mark = (self._fd, self.size)
        data = "".join(self._pending).encode("utf-8")
        if self.size == 0 and self.header is not None:
            data = self.header.encode("utf-8") + data
        try:
            self.ops.write(self._fd, data)
        except OSError:
            self.rollback()
            raise
        self.size += len(data)
        self.dirty = True

    def commit(self) -> None:
        self._pending.clear()
        self._mark = None

    def rollback(self) -> None:
        """Undo the last `write` (the database refused the same batch): cut back, keep the lines."""
        if self._mark is not None:
            fd, size = self._mark
            self._mark = None
            if fd == self._fd:
                self.ops.truncate(fd, size)
                self.size = size

    def sync(self) -> None:
        if self._fd is not None and self.dirty:
            self.ops.fsync(self._fd)
            self.dirty = False

    def sync_later(self) -> int | None:
        """A duplicate of the file's descriptor for the syncer to fsync, when written since the last."""
        if self._fd is None or not self.dirty:
            return None
        fd = os.dup(self._fd)
        self.dirty = False
        return fd

    def close(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            try:
                self.sync()
            except OSError:
                pass  # best effort; the data reached the page cache
            os.close(self._fd)
            self._fd = None
            self.path = None

    def _target(self, hour: str) -> None:
        if self.hour is not None and hour < self.hour:
            hour = self.hour  # the clock went back: keep the newest chunk the only growing one
        if self._fd is not None and hour == self.hour:
            return
        self._close()
        if hour != self.hour:
            self.hour, self.part = hour, 1
        while True:
            path = chunk_path(self.directory, self.name, hour, self.part, self.ext)
            if not path.exists():
                break
            repair_torn(path, self.ops, self.on_repair)
            if self.header is None or first_line(path) in (self.header, None):
                break
            self.part += 1  # the header differs (a new birth): a new part, the old one stays closed
        fd = self.ops.open_append(path)
        self._fd, self.path, self.size = fd, path, os.fstat(fd).st_size
        if self.size and self.header is not None and first_line(path) is None:
            self.ops.truncate(fd, 0)  # only part of a header line: nothing worth keeping
            self.size = 0
