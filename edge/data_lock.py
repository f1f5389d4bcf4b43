"""One process per folder: an exclusive `flock` on a lock file that names its holder.

Two units on one data folder would hand out the same sequence numbers and
share one reply log and one pump volume record; two `labedge lab` on one
folder would rewrite each other's files. `labedge edge run` takes
`data_dir/unit.lock` before anything starts and `labedge lab` takes
`DIR/lab.lock` before it writes anything; each holds its lock for the life of
the process. The kernel releases a flock when the process ends, however it
ends, so a stale file never blocks a restart. The file holds the holder's pid
and what it runs, which is what a second process reports. (The outbox's own
exclusive sqlite lock stays as a second line of defence.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from types import TracebackType

from lecis.errors import LabedgeError

LOCK_NAME = "unit.lock"
Info = dict[str, "str | int | None"]


class LockHeld(LabedgeError):
    """Another live process holds the lock; `holder` describes it (`pid 1234 (unit bench-1, ...)`)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by {holder}")
        self.path = path
        self.holder = holder


class LockUnusable(LabedgeError):
    """The lock file cannot be created, opened or locked."""


class DataDirBusy(LabedgeError):
    """Another unit process uses the data folder."""


def describe_holder(text: str) -> str:
    """`pid 1234 (unit bench-1, config /srv/unit.yaml)` from a lock file's content, as far as it goes."""
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
        return "a process that has not written its pid yet"
    details = [f"{key} {value}" for key, value in info.items()
               if key != "pid" and isinstance(value, (str, int)) and not isinstance(value, bool)]
    return f"pid {info['pid']}" + (f" ({', '.join(details)})" if details else "")


class PidLock:
    """`with PidLock(path, {"unit": "bench-1"}):` holds `path` for this process, or raises LockHeld."""

    def __init__(self, path: Path, info: Info | None = None) -> None:
        self.path = path
        self.info = info or {}
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LockUnusable(f"cannot create {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = "a process whose pid cannot be read"
            with contextlib.suppress(OSError):
                holder = describe_holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
            os.close(fd)
            raise LockHeld(self.path, holder) from None
        except OSError as exc:
            os.close(fd)
            raise LockUnusable(f"cannot lock {self.path}: {exc.strerror or exc}; use a local disk") from None
        # Written only once locked: truncating before would wipe the holder's line.
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), **self.info}).encode() + b"\n", 0)
        self._fd = fd

    def release(self) -> None:
        """Let go. The file stays: removing it could let two processes lock two different files."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> PidLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class DataDirLock(PidLock):
    """The unit's hold on its data folder; DataDirBusy names the other unit process."""

    def __init__(self, data_dir: Path, unit: str | None = None, config: str | None = None) -> None:
        super().__init__(data_dir / LOCK_NAME, {"unit": unit, "config": config})
        self.data_dir = data_dir

    def acquire(self) -> None:
        try:
            super().acquire()
        except LockHeld as exc:
            raise DataDirBusy(f"the data folder {self.data_dir} is in use by another unit process, "
                              f"{exc.holder}; stop it first, or give this unit its own data_dir") from None
        except LockUnusable as exc:
            raise LockUnusable(f"cannot use the data folder {self.data_dir}: {exc}; check data_dir in "
                               "the unit config and its permissions") from None
