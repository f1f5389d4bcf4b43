"""fsync of the run files on a thread of their own, so a slow disk does not hold the writer.

Every `sync_s` the writer makes what it wrote durable: one fsync per file written
since (a run of 10 units x 5 modules: over 50 files, 25-100 ms on an ordinary
disk). Done by the writer itself, that time held up whatever came meanwhile,
among it a command's write-ahead record, for which the controller waits before
it sends. The writer now hands duplicates of the descriptors here and goes on;
a batch still being synced when the next falls due makes the writer keep its
files dirty for the next round instead of queueing without bound.
"""

from __future__ import annotations

import logging
import os
import threading

from hub.recorder.chunks import FileOps

log = logging.getLogger("labedge.hub.recorder")


class Syncer:
    """`hand(fds)`: fsync each and close it, in the background; `idle()` once the last batch is done."""

    def __init__(self, files: FileOps) -> None:
        self.files = files
        self._batch: list[int] = []
        self._ready = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.synced = 0  # descriptors synced, for tests and the curious
        self.failed = 0

    def idle(self) -> bool:
        with self._ready:
            return not self._busy

    def hand(self, fds: list[int]) -> None:
        """fsync and close every descriptor of `fds` (owned from here on); call only when idle()."""
        if not fds:
            return
        with self._ready:
            if self._stopping:
                self._close_all(fds)
                return
            assert not self._busy, "hand() while a batch is still being synced"
            self._batch, self._busy = fds, True
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name="recorder-sync", daemon=True)
                self._thread.start()
            self._ready.notify()

    def stop(self) -> None:
        """Finish the batch under way, then end the thread."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _main(self) -> None:
        while True:
            with self._ready:
                while not self._busy and not self._stopping:
                    self._ready.wait()
                if not self._busy:
                    return
                batch = self._batch
            self._sync(batch)
            with self._ready:
                self._batch, self._busy = [], False

    def _sync(self, fds: list[int]) -> None:
        for fd in fds:
            try:
                self.files.fsync(fd)
                self.synced += 1
            except OSError as exc:
                self.failed += 1
                log.warning("recorder: cannot fsync a run file: %s", exc)
            finally:
                os.close(fd)

    @staticmethod
    def _close_all(fds: list[int]) -> None:
        for fd in fds:
            os.close(fd)
