"""The retained lab/hub/sessions/U: every change at once, progress rate-limited, the truth when sent."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from hub.sessions.log import LOG_NAME
from hub.sessions.model import Session, SessionSource, UploadProgress
from hub.sessions.publisher import SessionPublisher
from hub.sessions.service import SessionService
from lecis.clock import SystemClock
from lecis.topics import Topics
from tests.hub.sessions.test_service import FakeRecorder, FakeUploads, until


class Broker:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], bool]] = []
        self.down = False

    async def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        if self.down:
            raise ConnectionError("broker away")
        self.sent.append((topic, json.loads(payload), retain))


def on(broker: Broker, unit: str) -> list[dict[str, Any]]:
    return [p for t, p, _ in broker.sent if t == f"lab/hub/sessions/{unit}"]


async def test_changes_go_out_at_once_and_progress_at_most_once_a_period(tmp_path: Path) -> None:
    uploads = FakeUploads()
    broker = Broker()
    service = SessionService(tmp_path / LOG_NAME, tmp_path, SystemClock(), FakeRecorder(), uploads)
    # A period far longer than the test: progress after the first publish is held back all along.
    async with service, SessionPublisher(service, broker.publish, Topics(), SystemClock(), period_s=600):
        session = await service.start("bench-1", source=SessionSource.CLI)
        await until(lambda: on(broker, "bench-1"))
        assert on(broker, "bench-1")[-1]["state"] == "open"
        assert all(retain for _, _, retain in broker.sent)
        for i in range(1, 201):  # a busy upload: 200 reports
            uploads.figures = UploadProgress(files_done=i, files_pending=200 - i, bytes_done=i * 10)
            service.upload_progress(session.id, uploads.figures)
            await asyncio.sleep(0)
        await service.stop("bench-1", source=SessionSource.CLI)  # a change: out at once, not held back
        closing = await until(lambda: [p for p in on(broker, "bench-1") if p["state"] == "closing"])
        states = [p["state"] for p in on(broker, "bench-1")]
        assert states[:2] == ["open", "closing"], "no progress publish within the period"
        assert closing[0]["upload"]["files_done"] == 200, "the figures as they are when it is sent"


async def test_held_back_progress_goes_out_once_the_period_is_over(tmp_path: Path) -> None:
    uploads = FakeUploads()
    broker = Broker()
    service = SessionService(tmp_path / LOG_NAME, tmp_path, SystemClock(), FakeRecorder(), uploads)
    async with service, SessionPublisher(service, broker.publish, Topics(), SystemClock(), period_s=0.05):
        session = await service.start("bench-1", source=SessionSource.CLI)
        await until(lambda: on(broker, "bench-1"))
        for i in range(1, 51):
            uploads.figures = UploadProgress(files_done=i)
            service.upload_progress(session.id, uploads.figures)
        await until(lambda: on(broker, "bench-1")[-1]["upload"]["files_done"] == 50)


async def test_after_a_failed_publish_the_reconnect_sends_the_truth(tmp_path: Path) -> None:
    broker = Broker()
    service = SessionService(tmp_path / LOG_NAME, tmp_path, SystemClock(), FakeRecorder())
    async with service, SessionPublisher(service, broker.publish, Topics(), SystemClock()) as publisher:
        broker.down = True
        await service.start("bench-2", source=SessionSource.BUTTON)
        await asyncio.sleep(0.05)
        broker.down = False
        await publisher.republish()
        sent = await until(lambda: on(broker, "bench-2"))
        assert sent[-1]["state"] == "open" and sent[-1]["started_by"] == "button"


async def test_reports_from_another_thread_are_taken_on_the_loop(tmp_path: Path) -> None:
    service = SessionService(tmp_path / LOG_NAME, tmp_path, SystemClock(), FakeRecorder())
    seen: list[tuple[Session, UploadProgress]] = []
    async with service:
        service.progress_listeners.append(lambda s, p: seen.append((s, p)))
        session = await service.start("bench-3", source=SessionSource.CLI)

        def report() -> None:
            service.upload_file(session.id, {"path": "a.csv", "status": "uploaded"})
            service.upload_progress(session.id, UploadProgress(files_done=1))

        thread = threading.Thread(target=report)
        thread.start()
        thread.join()
        await until(lambda: seen and service.files(session.id))
        assert seen[0][1].files_done == 1

