"""`Uploader`: the hub's SessionUploads, every open session's files into gs://BUCKET/PREFIX/UNIT/SESSION_ID/.

`begin(session)` starts a periodic scan of the unit's watched folders and the
session's recorder folder; `finish(session)` stops it, runs a final scan and
upload (a still-growing file is waited for up to `final_timeout_s`), then
lists every object under the session's prefix and compares MD5s. The
blocking client runs in a pool of `workers` threads. Offline, everything
stays pending in the manifest and nothing is lost; `finish` then says what
is missing and the session log calls it again later.

`on_progress(session_id, UploadProgress)` after each scan and each file;
`on_file(session_id, row)` once per outcome, `row["status"]` one of
`uploaded` (with `size`, `md5`, `generation`, `uploaded_at`, `object`, and
`note` when an upload cut by a restart had landed and was not sent again),
`gone` (deleted or renamed before it went up), `error` (refused for good
until it changes: `error` says why) or `skipped` (a symlink leading out, a
name the bucket cannot hold...: `error` says why); `path` is the relative path.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hub.config import HubConfig
from hub.sessions.model import FinalTransfer, Session, UploadProgress
from hub.upload.job import SessionJob
from hub.upload.manifest import Manifest
from hub.upload.names import object_name, session_prefix
from hub.upload.shared import Context, Gate, roots_for
from hub.upload.transfer import Bucket, UploadFailed
from lecis.clock import Clock
from lecis.errors import SettingInvalid

log = logging.getLogger(__name__)


class Uploader:
    """Implements hub.sessions.model.SessionUploads; `close()` (or `async with`) stops it."""

    def __init__(self, config: HubConfig, data_dir: Path, clock: Clock,
                 on_progress: Callable[[str, UploadProgress], None],
                 on_file: Callable[[str, dict[str, Any]], None],
                 *, env: Mapping[str, str] | None = None, bucket: Bucket | None = None) -> None:
        if config.storage is None and bucket is None:
            raise SettingInvalid("the uploader needs storage: (bucket, prefix) in hub.yaml")
        self.config = config
        self.data_dir = data_dir
        self.clock = clock
        self.on_progress = on_progress
        self.on_file = on_file
        self._env = env
        self._bucket = bucket
        self._ctx: Context | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: dict[str, SessionJob] = {}
        self._closed: dict[str, UploadProgress] = {}

    async def __aenter__(self) -> Uploader:
        self._context()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _context(self) -> Context:
        if self._ctx is None:
            up = self.config.upload
            storage = self.config.storage
            assert storage is not None or self._bucket is not None
            bucket = self._bucket or Bucket(storage, up, self._env)  # type: ignore[arg-type]
            self._pool = ThreadPoolExecutor(max_workers=up.workers + 1, thread_name_prefix="upload")
            pool = self._pool

            async def run(fn: Callable[..., Any], *args: Any) -> Any:
                return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args))

            self._ctx = Context(up, bucket.config.prefix, Manifest(self.data_dir), bucket, self.clock, run,
                                Gate(self.clock, up.retry_max_s), asyncio.Semaphore(up.workers),
                                self._file, self._changed)
        return self._ctx

    async def close(self) -> None:
        if self._ctx is not None:
            self._ctx.bucket.stopping.set()
        for job in self._jobs.values():
            await _stop(job)
            job.cancel_sends()
        self._jobs.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)  # a transfer in a thread ends by itself
            self._pool = None
        if self._ctx is not None:
            self._ctx.manifest.close()
            self._ctx = None

    # -- SessionUploads --------------------------------------------------------------------------------

    def begin(self, session: Session) -> None:
        """Start (or resume after a restart) the periodic uploads of an open session; needs a running loop."""
        job = self._job(session)
        if job.task is None or job.task.done():
            job.task = asyncio.get_running_loop().create_task(job.periodic(), name=f"upload-{session.id}")
            job.task.add_done_callback(functools.partial(_noticed, session.id))

    async def finish(self, session: Session) -> FinalTransfer:
        job = self._job(session)
        await _stop(job)
        try:
            await job.prepare()
            await self._final_uploads(job)
            result = await self._verify(job)
        except UploadFailed as e:
            result = FinalTransfer(False, missing=tuple(sorted(job.pending)), details={"error": str(e)})
        except Exception as e:  # the session log retries; it must get an answer, not an exception
            log.exception("final transfer of session %s", session.id)
            result = FinalTransfer(False, missing=tuple(sorted(job.pending)),
                                   details={"error": f"{type(e).__name__}: {e}"})
        self._changed(session.id)
        if result.verified:  # the last figures stay readable; the job's memory goes
            self._closed[session.id] = self.progress(session.id)
            self._jobs.pop(session.id, None)
        return result

    def progress(self, session_id: str) -> UploadProgress:
        job = self._jobs.get(session_id)
        if job is None:
            return self._closed.get(session_id, UploadProgress())
        errors = len(job.failed) + sum(1 for rel in job.problems if rel not in job.failed)
        return UploadProgress(
            files_pending=len(job.pending), files_done=len(job.done),
            bytes_pending=sum(p.seen.size for p in job.pending.values()), bytes_done=job.bytes_done,
            rate_bps=job.rate_bps(), errors=errors,
            last_scan_at=job.last_scan_at)

    # -- inside ----------------------------------------------------------------------------------------

    def _job(self, session: Session) -> SessionJob:
        job = self._jobs.get(session.id)
        if job is None:
            roots = roots_for(session, self.config.watch.get(session.unit, ()))
            job = self._jobs[session.id] = SessionJob(session, roots, self._context())
        else:
            job.session = session
        return job

    async def _final_uploads(self, job: SessionJob) -> None:
        ctx = job.ctx
        deadline = self.clock.monotonic() + self.config.upload.final_timeout_s
        await job.drain()  # what the periodic scan had begun to send
        job.retry_failed()  # each final transfer tries the files that failed once more
        await job.scan_once(final=True)
        while True:
            job.send_ready()
            await job.drain()
            if not job.pending or not ctx.gate.open() or self.clock.monotonic() >= deadline:
                return
            await self.clock.sleep(max(0.05, min(self.config.upload.stable_s / 2, 1.0)))
            await job.scan_once(final=True)

    async def _verify(self, job: SessionJob) -> FinalTransfer:
        ctx = job.ctx
        unit, sid = job.session.unit, job.sid
        if not ctx.gate.open():  # offline: no listing to wait for, the pending files are what is missing
            return FinalTransfer(False, missing=tuple(sorted(job.pending)),
                                 details={"error": ctx.gate.last_error or "the bucket is unreachable"})
        listed = await ctx.run(ctx.bucket.list, session_prefix(ctx.prefix, unit, sid))
        missing: list[str] = []
        differ: list[str] = []
        growing: list[str] = []
        failed: list[str] = []
        gone: list[str] = []
        for rel, f in sorted(job.files.items()):
            if f.state == "baseline":
                continue
            if f.state == "gone":
                gone.append(rel)
                continue
            if f.state == "error":
                failed.append(f"{rel}: {f.error}")
                continue
            if rel in job.pending:
                (growing if ctx.gate.open() else missing).append(rel)
                continue
            obj = listed.get(object_name(ctx.prefix, unit, sid, rel))
            if obj is None:
                missing.append(rel)
            elif obj.md5 != f.md5:
                differ.append(rel)
        for rel, why in sorted(job.problems.items()):
            if rel not in job.files and "does not exist" in why:
                failed.append(f"{rel}: {why}")
        ok = not (missing or differ or growing or failed)
        details: dict[str, Any] = {"gone": gone, "skipped": dict(job.problems)}
        if ctx.gate.last_error:
            details["error"] = ctx.gate.last_error
        return FinalTransfer(ok, len(listed), tuple(missing), tuple(differ), tuple(growing), tuple(failed),
                             details)

    def _file(self, session_id: str, row: dict[str, Any]) -> None:
        try:
            self.on_file(session_id, row)
        except Exception:
            log.exception("on_file for session %s", session_id)

    def _changed(self, session_id: str) -> None:
        try:
            self.on_progress(session_id, self.progress(session_id))
        except Exception:
            log.exception("on_progress for session %s", session_id)


async def _stop(job: SessionJob) -> None:
    task, job.task = job.task, None
    if task is not None and not task.done():
        job.stopping = True  # a file being sent is finished first; a sleeping loop is woken
        if job.sleeping:
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        finally:
            job.stopping = False


def _noticed(session_id: str, task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("uploads of session %s stopped: %r", session_id, task.exception())
